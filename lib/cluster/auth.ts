/**
 * Cluster authentication (docs/cluster.md, "Security"): the shared secret, the keys derived
 * from it, and the challenge-response handshake that proves it in both directions without
 * sending it.
 *
 * The handshake, on a connection from a connector to an acceptor:
 *
 *   connector -> hello           { ..., nonce: Nc }
 *   acceptor  -> hello-challenge { nonce: Na, protocolVersion: v }
 *   connector -> hello-proof     { proofs: [HMAC(K, "connector" | T) for each secret K it has] }
 *   acceptor  -> hello-ack       { nodeId, protocolVersion: v, proof: HMAC(K, "acceptor" | T | [nodeId, acknowledges]), acknowledges }
 *
 * T hashes every field of the hello (its identity and its link fields), both nonces, the
 * negotiated version and, over TLS, keying material exported from the connection's TLS
 * session. Both nonces are fresh, so a recorded handshake proves nothing on another
 * connection; the connector proves first, so an outsider who connects learns nothing derived
 * from the secret. Keys K are derived from each secret with scrypt, so a recorded proof does
 * not make guessing a weak secret cheap.
 *
 * With `cluster.tls` the connection runs over TLS 1.3, which protects every frame after the
 * handshake. With the secret alone it is plain TCP, and every frame after the handshake
 * carries a tag under keys derived from K and T (frame-auth.ts), so it cannot be forged,
 * altered, replayed, reordered, dropped or moved to another connection unnoticed; it is not
 * encrypted. The simulated network runs the handshake and models neither TLS nor the tags (it
 * models faults, not attackers).
 */
import { createHash, createHmac, scrypt, timingSafeEqual } from 'node:crypto';
import { inspect } from 'node:util';
import { HANDSHAKE_NONCE_BYTES, MAX_ACCEPTED_SECRETS, MAX_NODE_ID_BYTES, MAX_SECRET_BYTES, MIN_SECRET_LENGTH } from './constants';
import { sessionKeys } from './frame-auth';
import type { Connection, WireMessage } from './network';
import type { Random } from './seams';

/** scrypt cost of deriving a key from a secret: about 70 ms and 16 MiB once per secret per process. */
const SCRYPT_OPTIONS = { N: 2 ** 14, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };
const SCRYPT_SALT = 'shoal cluster secret v1';
const KEY_BYTES = 32;
const TRANSCRIPT_LABEL = 'shoal-cluster-handshake-1';

/**
 * The secrets a node was given: its own (`cluster.secret`), which it proves, and the others it
 * accepts from peers during a roll (`cluster.acceptSecrets`). Kept out of logs, JSON and
 * util.inspect.
 */
export class ClusterSecrets {
  readonly #own: Buffer;
  readonly #accepted: readonly Buffer[];

  /**
   * @throws TypeError naming the option if a secret is neither a string of at least
   *   MIN_SECRET_LENGTH characters nor a Buffer of at least MIN_SECRET_LENGTH bytes, or
   *   acceptSecrets is not an array of them (at most MAX_ACCEPTED_SECRETS).
   */
  constructor(own: unknown, accepted: unknown = []) {
    this.#own = secretBytes(own, 'cluster.secret');
    if (!Array.isArray(accepted) || accepted.length > MAX_ACCEPTED_SECRETS) {
      throw new TypeError(`cluster.acceptSecrets must be an array of at most ${MAX_ACCEPTED_SECRETS} secrets`);
    }
    this.#accepted = accepted.map((secret, i) => secretBytes(secret, `cluster.acceptSecrets[${i}]`));
  }

  /** Derives the handshake keys (scrypt, off the event loop; cached per secret). */
  async keys(): Promise<HandshakeKeys> {
    const own = await deriveKey(this.#own);
    const accepted = [own];
    for (const secret of this.#accepted) {
      const key = await deriveKey(secret);
      if (!accepted.some((known) => known.equals(key))) accepted.push(key);
    }
    return { own, accepted };
  }

  toJSON(): string {
    return '[cluster secrets]';
  }

  [inspect.custom](): string {
    return 'ClusterSecrets [hidden]';
  }
}

/** Keys derived from the secrets: `own` is proved, any of `accepted` (own first) is accepted. */
export interface HandshakeKeys {
  own: Buffer;
  accepted: Buffer[];
}

function secretBytes(value: unknown, name: string): Buffer {
  if (typeof value === 'string') {
    if ([...value].length < MIN_SECRET_LENGTH) throw new TypeError(`${name} must be at least ${MIN_SECRET_LENGTH} characters`);
    const bytes = Buffer.from(value, 'utf8');
    if (bytes.length > MAX_SECRET_BYTES) throw new TypeError(`${name} must be at most ${MAX_SECRET_BYTES} bytes`);
    return bytes;
  }
  if (Buffer.isBuffer(value)) {
    if (value.length < MIN_SECRET_LENGTH || value.length > MAX_SECRET_BYTES) throw new TypeError(`${name} must be ${MIN_SECRET_LENGTH}..${MAX_SECRET_BYTES} bytes`);
    return Buffer.from(value);
  }
  throw new TypeError(`${name} must be a string of at least ${MIN_SECRET_LENGTH} characters or a Buffer`);
}

/** Derived keys by a hash of their secret: a process deriving one secret twice (restarts in the simulator, tests) pays once. */
const derivedKeys = new Map<string, Promise<Buffer>>();
const MAX_CACHED_KEYS = 64;

function deriveKey(secret: Buffer): Promise<Buffer> {
  const id = createHash('sha256').update(secret).digest('hex');
  let key = derivedKeys.get(id);
  if (key === undefined) {
    key = new Promise<Buffer>((resolve, reject) => scrypt(secret, SCRYPT_SALT, KEY_BYTES, SCRYPT_OPTIONS, (error, derived) => (error === null ? resolve(derived) : reject(error))));
    if (derivedKeys.size >= MAX_CACHED_KEYS) derivedKeys.clear();
    derivedKeys.set(id, key);
  }
  return key;
}

/** What a hello says about its sender, as both ends hash it into the transcript. */
export interface HelloIdentity {
  protocolVersion: number;
  minProtocolVersion: number;
  nodeId: string;
  clusterName: string;
  /** The sender's listen address; '' for an admin client. */
  address: string;
  role: 'node' | 'admin';
}

/** The hello's fields about its link (fabric-outbound.ts), hashed into the transcript too so nobody on the path alters them. */
export interface HelloLink {
  /** The connector asks for acknowledgements of its frames. */
  acknowledge?: boolean;
  /** Its id of this link, and of the link this one replaces. */
  link?: string;
  replaces?: string;
}

/** `count` fresh random bytes from the runtime's source (crypto in production, seeded in the simulator). */
export function randomNonce(random: Random): Buffer {
  if (random.nextBytes !== undefined) return random.nextBytes(HANDSHAKE_NONCE_BYTES);
  const nonce = Buffer.allocUnsafe(HANDSHAKE_NONCE_BYTES);
  for (let i = 0; i < HANDSHAKE_NONCE_BYTES; i += 4) nonce.writeUInt32BE(random.nextUint32(), i);
  return nonce;
}

/** A nonce from the wire: a Buffer (or Uint8Array) of HANDSHAKE_NONCE_BYTES, else undefined. */
export function wireBytes(value: unknown, length: number): Buffer | undefined {
  if (!(value instanceof Uint8Array) || value.length !== length) return undefined;
  return Buffer.from(value.buffer, value.byteOffset, value.length);
}

/** The hash both ends compute over the handshake (T in the module comment). */
export function handshakeTranscript(hello: HelloIdentity, link: HelloLink, connectorNonce: Buffer, acceptorNonce: Buffer, protocolVersion: number, tlsBinding: Buffer | undefined): Buffer {
  const hash = createHash('sha256');
  const linkFields = [link.acknowledge === true, link.link ?? null, link.replaces ?? null];
  hash.update(JSON.stringify([TRANSCRIPT_LABEL, hello.protocolVersion, hello.minProtocolVersion, hello.nodeId, hello.role, hello.clusterName, hello.address, protocolVersion, linkFields]));
  hash.update(connectorNonce);
  hash.update(acceptorNonce);
  hash.update(tlsBinding === undefined ? Buffer.from([0]) : Buffer.concat([Buffer.from([1, tlsBinding.length]), tlsBinding]));
  return hash.digest();
}

function mac(key: Buffer, label: string, ...parts: (Buffer | string)[]): Buffer {
  const hmac = createHmac('sha256', key).update(`${label}\u0000`);
  for (const part of parts) hmac.update(part);
  return hmac.digest();
}

/** The connector's proofs of T, one per key it holds (own first), so a peer that accepts any of them during a roll admits it. */
export function connectorProofs(keys: HandshakeKeys, transcript: Buffer): Buffer[] {
  return keys.accepted.map((key) => mac(key, 'connector', transcript));
}

/** The acceptor's key matching one of the connector's proofs, or undefined. Constant time per comparison. */
export function matchConnectorProof(keys: HandshakeKeys, transcript: Buffer, proofs: unknown): Buffer | undefined {
  if (!Array.isArray(proofs) || proofs.length === 0 || proofs.length > MAX_ACCEPTED_SECRETS + 1) return undefined;
  const offered = proofs.map((proof) => wireBytes(proof, KEY_BYTES)).filter((proof): proof is Buffer => proof !== undefined);
  for (const key of keys.accepted) {
    const expected = mac(key, 'connector', transcript);
    if (offered.some((proof) => timingSafeEqual(proof, expected))) return key;
  }
  return undefined;
}

/** The acceptor's proof of T, its node id and whether it acknowledges frames, under the key the connector proved. */
export function acceptorProof(key: Buffer, transcript: Buffer, acceptorNodeId: string, acknowledges: boolean): Buffer {
  return mac(key, 'acceptor', transcript, JSON.stringify([acceptorNodeId, acknowledges]));
}

/** The key (of the connector's) under which `proof` is the acceptor's proof, or undefined. */
export function matchAcceptorProof(keys: HandshakeKeys, transcript: Buffer, acceptorNodeId: string, acknowledges: boolean, proof: unknown): Buffer | undefined {
  const offered = wireBytes(proof, KEY_BYTES);
  if (offered === undefined) return undefined;
  return keys.accepted.find((key) => timingSafeEqual(offered, acceptorProof(key, transcript, acceptorNodeId, acknowledges)));
}

/** How a connector's handshake ended. */
export type HandshakeOutcome =
  | { kind: 'pending' }
  | { kind: 'ready'; nodeId: string; protocolVersion: number; acknowledges: boolean }
  | { kind: 'failed'; reason: string; refused: boolean };

/**
 * The connector's side of the handshake, shared by the fabric's outbound links and the
 * admin client. Without keys it sends a plain hello and takes the hello-ack (loopback
 * clusters without a secret); with keys it proves them and requires the acceptor's proof,
 * then (without TLS) authenticates every later frame of the connection.
 * `tls`: the connection runs over TLS (`cluster.tls`), so the proofs must be bound to its session.
 */
export class ConnectorHandshake {
  private state: 'hello' | 'proof' | 'done' = 'hello';
  private readonly nonce: Buffer | undefined;
  private transcript: Buffer | undefined;
  private negotiated = 0;

  constructor(
    private readonly connection: Connection,
    private readonly identity: HelloIdentity,
    private readonly keys: HandshakeKeys | undefined,
    random: Random,
    private readonly tls: boolean,
    /** The fabric's link fields of the hello (part of the transcript). */
    private readonly link: HelloLink = {},
  ) {
    this.nonce = keys === undefined ? undefined : randomNonce(random);
  }

  /** Sends the hello. */
  start(): void {
    const { role, address, ...fields } = this.identity;
    const hello: WireMessage = { type: 'hello', ...fields };
    if (role === 'admin') hello.role = 'admin';
    else hello.address = address;
    if (this.nonce !== undefined) hello.nonce = this.nonce;
    for (const [field, value] of Object.entries(this.link)) if (value !== undefined) hello[field] = value;
    this.connection.send(hello);
  }

  /** Handles one message received during the handshake. */
  onMessage(message: WireMessage): HandshakeOutcome {
    if (message.type === 'hello-reject') return this.fail(`refused: ${String(message.reason).slice(0, 300)}`, true);
    if (message.type === 'hello-challenge' && this.state === 'hello') return this.answerChallenge(message);
    if (message.type === 'hello-ack' && (this.state === 'proof' || (this.state === 'hello' && this.keys === undefined))) return this.finish(message);
    if (message.type === 'hello-ack' && this.keys !== undefined) {
      return this.fail('it answered without proving the cluster secret (is cluster.secret set there?)', false);
    }
    return this.fail(`unexpected "${message.type}" during the handshake`, false);
  }

  private answerChallenge(message: WireMessage): HandshakeOutcome {
    if (this.keys === undefined || this.nonce === undefined) {
      return this.fail('it requires the cluster secret, and none is configured here', false);
    }
    const acceptorNonce = wireBytes(message.nonce, HANDSHAKE_NONCE_BYTES);
    if (acceptorNonce === undefined || !Number.isInteger(message.protocolVersion)) return this.fail('malformed challenge', false);
    const binding = this.connection.tlsBinding;
    if (this.tls && binding === undefined) return this.fail('no TLS session to bind the handshake to', false);
    this.negotiated = message.protocolVersion as number;
    this.transcript = handshakeTranscript(this.identity, this.link, this.nonce, acceptorNonce, this.negotiated, binding);
    this.state = 'proof';
    this.connection.send({ type: 'hello-proof', proofs: connectorProofs(this.keys, this.transcript) });
    return { kind: 'pending' };
  }

  private finish(message: WireMessage): HandshakeOutcome {
    const nodeId = message.nodeId;
    if (typeof nodeId !== 'string' || nodeId.length === 0 || Buffer.byteLength(nodeId) > MAX_NODE_ID_BYTES || !Number.isInteger(message.protocolVersion)) {
      return this.fail('malformed hello-ack', false);
    }
    const acknowledges = message.acknowledges === true;
    if (this.keys !== undefined) {
      const key = matchAcceptorProof(this.keys, this.transcript!, nodeId, acknowledges, message.proof);
      if (key === undefined || message.protocolVersion !== this.negotiated) return this.fail('it failed to prove the cluster secret', false);
      // The ack was the acceptor's last frame without a tag, and the proof was ours.
      if (!this.tls) this.connection.authenticateFrames(sessionKeys(key, this.transcript!, 'connector'));
    }
    this.state = 'done';
    return { kind: 'ready', nodeId, protocolVersion: message.protocolVersion as number, acknowledges };
  }

  private fail(reason: string, refused: boolean): HandshakeOutcome {
    this.state = 'done';
    return { kind: 'failed', reason, refused };
  }
}
