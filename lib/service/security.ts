/**
 * Aerospike's login handshake (docs/protocol.md, "Security"), for `service.users`.
 *
 * A client logs in on its first connection with an admin frame (type 2): a 16-byte header
 * (command at byte 2, field count at byte 3), then fields (u32 size, u8 id, data). LOGIN (20)
 * carries the user and the credential: bcrypt of the password with Aerospike's constant salt
 * (aerospike-common's as_password.c), so the password itself never travels. The reply carries
 * a session token and its TTL; later connections present the token with AUTHENTICATE (0).
 * Until a connection has done either, every other request on it is refused with
 * NOT_AUTHENTICATED (80). Without users, admin commands answer SECURITY_NOT_ENABLED (52),
 * which clients take as "no login needed".
 */
import * as crypto from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { invalidArgument } from '../errors';
import { ByteWriter } from './byte-writer';
import { SERVICE_SESSIONS_MAX, SERVICE_SESSION_TTL_SECONDS, SERVICE_USERS_MAX } from './constants';
import { ResultCode } from './result-codes';
import { FrameType, ProtocolError, beginFrame, endFrame } from './wire';

/** Aerospike's constant bcrypt salt (aerospike-common, as_password.c). */
export const CREDENTIAL_SALT = '$2a$10$7EqJtq98hPqEX7fNZaFWoO';

const ADMIN_HEADER_BYTES = 16;
const Command = { AUTHENTICATE: 0, LOGIN: 20 } as const;
const Field = { USER: 0, CREDENTIAL: 3, CLEAR_PASSWORD: 4, SESSION_TOKEN: 5, SESSION_TTL: 6 } as const;
const SESSION_TOKEN_BYTES = 32;

export interface ServiceUser {
  user: string;
  password: string;
}

/**
 * The credentials clients send for these passwords: bcrypt (cost 10, about 0.2 s each) with
 * the constant salt, computed on a worker thread so the event loop (heartbeats, other
 * clients) is never held.
 * @throws the worker's error if bcryptjs cannot run.
 */
export function credentialsOf(passwords: string[]): Promise<string[]> {
  const source = `const { parentPort, workerData } = require('node:worker_threads');
const bcrypt = require(workerData.module);
parentPort.postMessage(workerData.passwords.map((password) => bcrypt.hashSync(password, workerData.salt)));`;
  return new Promise((resolve, reject) => {
    const worker = new Worker(source, { eval: true, workerData: { module: require.resolve('bcryptjs'), passwords, salt: CREDENTIAL_SALT } });
    worker.once('message', (hashes: string[]) => {
      void worker.terminate();
      resolve(hashes);
    });
    worker.once('error', reject);
  });
}

/**
 * Checks `service.users`.
 * @throws TypeError or ShoalError INVALID_ARGUMENT naming the bad entry.
 */
export function checkUsers(users: unknown): asserts users is ServiceUser[] | undefined {
  if (users === undefined) return;
  if (!Array.isArray(users)) throw new TypeError('service.users must be an array of { user, password }');
  if (users.length === 0) throw invalidArgument('service.users must not be empty (leave it out to accept every client)');
  if (users.length > SERVICE_USERS_MAX) throw invalidArgument(`service.users holds at most ${SERVICE_USERS_MAX} users`);
  const seen = new Set<string>();
  users.forEach((entry: ServiceUser, index) => {
    if (entry === null || typeof entry !== 'object') throw new TypeError(`service.users[${index}] must be { user, password }`);
    for (const name of Object.keys(entry)) if (name !== 'user' && name !== 'password') throw invalidArgument(`service.users[${index}] has unknown option "${name}"`);
    if (typeof entry.user !== 'string' || entry.user.length === 0 || Buffer.byteLength(entry.user) > 63) {
      throw invalidArgument(`service.users[${index}].user must be a string of 1 to 63 bytes`);
    }
    if (typeof entry.password !== 'string' || entry.password.length === 0 || Buffer.byteLength(entry.password) > 60) {
      throw invalidArgument(`service.users[${index}].password must be a string of 1 to 60 bytes`);
    }
    if (seen.has(entry.user)) throw invalidArgument(`service.users names "${entry.user}" twice`);
    seen.add(entry.user);
  });
}

export class Security {
  private readonly sessions = new Map<string, { user: string; expiresAtMs: number }>();

  private constructor(private readonly credentials: Map<string, Buffer> | undefined) {}

  /** Security for these users (none: every client is accepted). Hashes the passwords first. */
  static async create(users: ServiceUser[] | undefined): Promise<Security> {
    if (users === undefined) return new Security(undefined);
    const hashes = await credentialsOf(users.map((entry) => entry.password));
    return new Security(new Map(users.map((entry, index) => [entry.user, Buffer.from(hashes[index]!)])));
  }

  /** Whether connections must log in. */
  get enabled(): boolean {
    return this.credentials !== undefined;
  }

  /**
   * The first configured user and its credential, with which this node logs in to its peers'
   * listeners (peer-info.ts): the nodes of a cluster share their users. Undefined without users.
   */
  peerLogin(): { user: string; credential: Buffer } | undefined {
    const first = this.credentials?.entries().next();
    return first === undefined || first.done === true ? undefined : { user: first.value[0], credential: first.value[1] };
  }

  /**
   * Answers an admin frame body into `writer` (a whole frame). Returns whether the connection
   * is authenticated after it.
   * @throws ProtocolError for a body that is not an admin message.
   */
  handle(body: Buffer, writer: ByteWriter): boolean {
    if (body.length < ADMIN_HEADER_BYTES) throw new ProtocolError(`admin message of ${body.length} bytes is shorter than its header`);
    const command = body[2]!;
    const fields = readFields(body, body[3]!);
    if (this.credentials === undefined) {
      writeAdminReply(writer, ResultCode.SECURITY_NOT_ENABLED, []);
      return true;
    }
    const user = fields.get(Field.USER)?.toString('utf8');
    if (command === Command.LOGIN) {
      const credential = fields.get(Field.CREDENTIAL);
      const expected = user === undefined ? undefined : this.credentials.get(user);
      if (expected === undefined) return refuse(writer, ResultCode.INVALID_USER);
      if (credential === undefined || credential.length !== expected.length || !crypto.timingSafeEqual(credential, expected)) {
        return refuse(writer, ResultCode.INVALID_CREDENTIAL);
      }
      const token = this.openSession(user!);
      const ttl = Buffer.alloc(4);
      ttl.writeUInt32BE(SERVICE_SESSION_TTL_SECONDS);
      writeAdminReply(writer, ResultCode.OK, [
        [Field.SESSION_TOKEN, token],
        [Field.SESSION_TTL, ttl],
      ]);
      return true;
    }
    if (command === Command.AUTHENTICATE) {
      const token = fields.get(Field.SESSION_TOKEN);
      const session = token === undefined ? undefined : this.sessions.get(token.toString('hex'));
      if (session === undefined || session.user !== user) return refuse(writer, ResultCode.NOT_AUTHENTICATED);
      if (session.expiresAtMs < Date.now()) {
        this.sessions.delete(token!.toString('hex'));
        return refuse(writer, ResultCode.EXPIRED_SESSION);
      }
      writeAdminReply(writer, ResultCode.OK, []);
      return true;
    }
    // User and role administration is done in open() options, not over the wire.
    writeAdminReply(writer, ResultCode.INVALID_COMMAND, []);
    return false;
  }

  private openSession(user: string): Buffer {
    const token = crypto.randomBytes(SESSION_TOKEN_BYTES);
    if (this.sessions.size >= SERVICE_SESSIONS_MAX) this.sessions.delete(this.sessions.keys().next().value!);
    this.sessions.set(token.toString('hex'), { user, expiresAtMs: Date.now() + SERVICE_SESSION_TTL_SECONDS * 1000 });
    return token;
  }
}

function refuse(writer: ByteWriter, code: number): false {
  writeAdminReply(writer, code, []);
  return false;
}

function readFields(body: Buffer, count: number): Map<number, Buffer> {
  const fields = new Map<number, Buffer>();
  let at = ADMIN_HEADER_BYTES;
  for (let i = 0; i < count; i++) {
    if (body.length - at < 5) throw new ProtocolError(`admin field ${i} of ${count} is cut off`);
    const size = body.readUInt32BE(at);
    if (size < 1 || size > body.length - at - 4) throw new ProtocolError(`admin field ${i} claims ${size} bytes; ${body.length - at - 4} remain`);
    fields.set(body[at + 4]!, body.subarray(at + 5, at + 4 + size));
    at += 4 + size;
  }
  return fields;
}

/** An admin reply frame: header with the result code at byte 1 and the field count at byte 3. */
function writeAdminReply(writer: ByteWriter, resultCode: number, fields: [number, Buffer][]): void {
  const start = beginFrame(writer);
  writer.ensure(ADMIN_HEADER_BYTES);
  writer.buffer.fill(0, writer.length, writer.length + ADMIN_HEADER_BYTES);
  writer.buffer[writer.length + 1] = resultCode;
  writer.buffer[writer.length + 3] = fields.length;
  writer.length += ADMIN_HEADER_BYTES;
  for (const [id, value] of fields) {
    writer.u32(value.length + 1);
    writer.u8(id);
    writer.bytes(value);
  }
  endFrame(writer, start, FrameType.ADMIN);
}
