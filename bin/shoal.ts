#!/usr/bin/env node
/**
 * The operator CLI: talks to any running node over its fabric port (the admin protocol of
 * docs/cluster.md), so scripts get cluster state as JSON instead of parsing shell output.
 *
 *   shoal state <host:port> [--json]            cluster state and this node's namespace stats
 *   shoal stats <host:port> [--json]            the node's db.stats()
 *   shoal quiesce <host:port>                   hand off this node's partitions at the next rebalance
 *   shoal quiesce-undo <host:port>              revert quiesce
 *   shoal recluster <host:port>                 start a rebalance now
 *   shoal wait-migrations <host:port> [--timeout-ms N] [--json]
 *                                               wait until no node has migrations left, with a progress bar
 *   shoal serve CONFIG.json                     run a standalone server (lib/service/serve.ts)
 * Options: --cluster-name NAME (default "shoal"), --timeout-ms N (default 5000 per request,
 * 600000 for wait-migrations), --secret-file FILE (the cluster secret; or the environment
 * variable SHOAL_CLUSTER_SECRET), --tls-ca FILE --tls-cert FILE --tls-key FILE (PEM, when the
 * cluster runs TLS). Exit status: 0 done, 1 failed, 2 usage error.
 */
import * as fs from 'node:fs';
import { AdminClient, type AdminRequest, type AdminState, type TlsSettings } from '../lib/cluster/index';
import { serve } from '../lib/service/serve';

interface Arguments {
  command: string;
  address: string;
  json: boolean;
  clusterName: string | undefined;
  timeoutMs: number | undefined;
  secretFile: string | undefined;
  tlsFiles: { ca?: string; cert?: string; key?: string };
}

/** Environment variable holding the cluster secret (when --secret-file is not given). */
const SECRET_ENVIRONMENT_VARIABLE = 'SHOAL_CLUSTER_SECRET';

const COMMANDS = new Set(['state', 'stats', 'quiesce', 'quiesce-undo', 'recluster', 'wait-migrations']);
const POLL_INTERVAL_MS = 250;

function usage(message: string): never {
  process.stderr.write(`shoal: ${message}\n`);
  process.stderr.write(
    'usage: shoal <state|stats|quiesce|quiesce-undo|recluster|wait-migrations> <host:port> [--json] [--cluster-name NAME] [--timeout-ms N]\n' +
      '             [--secret-file FILE] [--tls-ca FILE --tls-cert FILE --tls-key FILE]   (or the secret in SHOAL_CLUSTER_SECRET)\n',
  );
  process.exit(2);
}

function parse(argv: string[]): Arguments {
  const positional: string[] = [];
  let json = false;
  let clusterName: string | undefined;
  let timeoutMs: number | undefined;
  let secretFile: string | undefined;
  const tlsFiles: Arguments['tlsFiles'] = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--json') json = true;
    else if (arg === '--secret-file') secretFile = argv[++i] ?? usage('--secret-file needs a file');
    else if (arg === '--tls-ca') tlsFiles.ca = argv[++i] ?? usage('--tls-ca needs a file');
    else if (arg === '--tls-cert') tlsFiles.cert = argv[++i] ?? usage('--tls-cert needs a file');
    else if (arg === '--tls-key') tlsFiles.key = argv[++i] ?? usage('--tls-key needs a file');
    else if (arg === '--cluster-name') clusterName = argv[++i] ?? usage('--cluster-name needs a value');
    else if (arg === '--timeout-ms') {
      timeoutMs = Number(argv[++i]);
      if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) usage('--timeout-ms needs a positive integer');
    } else if (arg === '--help' || arg === '-h') usage('help');
    else if (arg.startsWith('--')) usage(`unknown option ${arg}`);
    else positional.push(arg);
  }
  const [command, address] = positional;
  if (command === undefined || !COMMANDS.has(command)) usage(`unknown command ${command ?? '(none)'}`);
  if (address === undefined || !/^[^:\s]+:\d+$/.test(address)) usage('the node address must be host:port (its cluster listen address)');
  if (positional.length > 2) usage(`unexpected argument ${positional[2]}`);
  const tlsGiven = Object.keys(tlsFiles).length;
  if (tlsGiven > 0 && tlsGiven < 3) usage('TLS needs all three of --tls-ca, --tls-cert and --tls-key');
  return { command, address, json, clusterName, timeoutMs, secretFile, tlsFiles };
}

/**
 * The cluster secret from --secret-file (one trailing newline stripped, so a file written by
 * `echo` works) or SHOAL_CLUSTER_SECRET; undefined if neither is given.
 * @throws Error if the file cannot be read.
 */
function readSecret(args: Arguments): Buffer | undefined {
  if (args.secretFile === undefined) {
    const value = process.env[SECRET_ENVIRONMENT_VARIABLE];
    return value === undefined || value === '' ? undefined : Buffer.from(value, 'utf8');
  }
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(args.secretFile);
    if ((fs.statSync(args.secretFile).mode & 0o077) !== 0) process.stderr.write(`shoal: warning: ${args.secretFile} is readable by other users (chmod 600 it)\n`);
  } catch (error) {
    throw new Error(`cannot read the secret file: ${(error as Error).message}`);
  }
  const end = bytes.length - (bytes.subarray(-2).toString() === '\r\n' ? 2 : bytes.subarray(-1).toString() === '\n' ? 1 : 0);
  return bytes.subarray(0, end);
}

/** The TLS material from the --tls-* files; undefined without them. @throws Error if a file cannot be read. */
function readTls(args: Arguments): TlsSettings | undefined {
  const { ca, cert, key } = args.tlsFiles;
  if (ca === undefined || cert === undefined || key === undefined) return undefined;
  const read = (file: string) => {
    try {
      return fs.readFileSync(file);
    } catch (error) {
      throw new Error(`cannot read a TLS file: ${(error as Error).message}`);
    }
  };
  return { ca: read(ca), cert: read(cert), key: read(key) };
}

/** What to tell an operator whose connection failed, with the option that would fix it. */
function explain(error: Error, args: Arguments, secret: Buffer | undefined): Error {
  const message = error.message;
  const tls = args.tlsFiles.ca !== undefined;
  if (/requires the cluster secret/.test(message)) {
    return new Error(`${args.address} requires the cluster secret: pass --secret-file FILE or set ${SECRET_ENVIRONMENT_VARIABLE}${tls ? '' : ' (and --tls-ca, --tls-cert, --tls-key if the cluster runs TLS)'}`);
  }
  if (secret !== undefined && /authentication failed|TLS handshake .* failed|did not prove|failed to prove/.test(message)) {
    return new Error(`${args.address} did not accept this secret${tls ? ' or these certificates' : ' (or the cluster runs TLS with certificates: --tls-ca, --tls-cert, --tls-key)'}: ${message}`);
  }
  return error;
}

function printState(state: AdminState): void {
  const lines = [
    `node         ${state.nodeId} (${state.address})${state.quiesced.includes(state.nodeId) ? ' QUIESCED' : ''}`,
    `cluster key  ${state.clusterKey}   principal ${state.principal}   size ${state.succession.length}`,
    `succession   ${state.succession.join(', ')}`,
    `hears        ${state.nodes.join(', ')}`,
    `quiesced     ${state.quiesced.length === 0 ? '(none)' : state.quiesced.join(', ')}`,
    `partitions   master ${state.partitions.master}   replica ${state.partitions.replica}`,
    `migrations   ${state.migrationsRemaining} remaining here; cluster ${state.migrationsSettledClusterWide ? 'settled' : 'migrating'}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  printStats(state);
}

function printStats(state: AdminState): void {
  const namespaces = state.stats?.namespaces ?? {};
  for (const [name, figures] of Object.entries(namespaces)) {
    const shown = ['objects', 'masterObjects', 'replicaObjects', 'memoryUsedBytes', 'deviceUsedBytes', 'deviceFreePct', 'evicted', 'expired', 'startMode'];
    process.stdout.write(`namespace ${name}: ${shown.map((field) => `${field} ${String(figures[field])}`).join('  ')}\n`);
  }
}

function progressBar(done: number, total: number): string {
  const width = 30;
  const filled = total === 0 ? width : Math.round((done / total) * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
}

async function waitForMigrations(client: AdminClient, args: Arguments): Promise<AdminState> {
  const deadline = Date.now() + (args.timeoutMs ?? 600_000);
  let peak = 0;
  const interactive = !args.json && process.stderr.isTTY === true;
  for (;;) {
    const state = (await client.request('admin-state')) as AdminState;
    peak = Math.max(peak, state.migrationsRemaining);
    if (!args.json) {
      const line = `${progressBar(peak - state.migrationsRemaining, peak)} ${state.migrationsRemaining} partitions left here, cluster ${state.migrationsSettledClusterWide ? 'settled' : 'migrating'}`;
      process.stderr.write(interactive ? `\r${line}` : `${line}\n`);
    }
    if (state.migrationsSettledClusterWide && state.migrationsRemaining === 0) {
      if (interactive) process.stderr.write('\n');
      return state;
    }
    if (Date.now() > deadline) throw new Error(`migrations still running after ${args.timeoutMs ?? 600_000} ms`);
    await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
  }
}

async function main(): Promise<void> {
  if (process.argv[2] === 'serve') return serve(process.argv.slice(3));
  const args = parse(process.argv.slice(2));
  const secret = readSecret(args);
  const client = await AdminClient.connect(args.address, {
    clusterName: args.clusterName,
    secret,
    tls: readTls(args),
    timeoutMs: args.command === 'wait-migrations' ? 5_000 : args.timeoutMs ?? 5_000,
  }).catch((error: Error) => {
    throw explain(error, args, secret);
  });
  try {
    let state: AdminState;
    if (args.command === 'wait-migrations') state = await waitForMigrations(client, args);
    else if (args.command === 'state' || args.command === 'stats') state = (await client.request('admin-state')) as AdminState;
    else {
      await client.request(`admin-${args.command}` as AdminRequest);
      state = (await client.request('admin-state')) as AdminState;
    }
    if (args.json) {
      const value = args.command === 'stats' ? (state.stats ?? {}) : state;
      process.stdout.write(`${JSON.stringify(value, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}\n`);
    } else if (args.command === 'stats') {
      printStats(state);
    } else {
      if (args.command !== 'state' && args.command !== 'wait-migrations') process.stdout.write(`${args.command}: done\n`);
      printState(state);
    }
  } finally {
    client.close();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`shoal: ${(error as Error).message}\n`);
  process.exitCode = 1;
});
