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
 *   shoal wait-migrations <host:port> [--size N] [--timeout-ms N] [--json]
 *                                               wait until the cluster-wide rebalance is over, a
 *                                               pending one included, with a progress bar on a TTY
 *   shoal xdr state|add-destination|remove-destination|wait-shipped <host:port> ...
 *                                               cross-cluster shipping (bin/operator-commands.ts)
 *   shoal backup <host:port> --ns NS --out FILE  a Shoal backup file; shoal restore <host:port> --in FILE
 *   shoal serve CONFIG.json                     run a standalone server (lib/service/serve.ts)
 *   shoal --help, shoal COMMAND --help          usage (exit 0)
 * Options: --cluster-name NAME (default "shoal"), --timeout-ms N (default 5000 per request,
 * 600000 for wait-migrations), --secret-file FILE (the cluster secret; or the environment
 * variable SHOAL_CLUSTER_SECRET), --tls-ca FILE --tls-cert FILE --tls-key FILE (PEM, when the
 * cluster runs TLS). --json prints one object of the versioned schema of docs/cluster.md
 * ("The CLI's JSON"). Exit status: 0 done, 1 failed, 2 usage error.
 */
import { AdminClient, type AdminRequest, type AdminState } from '../lib/cluster/index';
import { serve } from '../lib/service/serve';
import { SECRET_ENVIRONMENT_VARIABLE, readSecret, readTls } from './connection-options';
import { OPERATOR_COMMANDS, OPERATOR_HELP, OPERATOR_USAGE, UsageError, runOperatorCommand } from './operator-commands';

interface Arguments {
  command: string;
  address: string;
  json: boolean;
  /** wait-migrations: the number of members to wait for (Aerospike's cluster-stable size). */
  size: number | undefined;
  clusterName: string | undefined;
  timeoutMs: number | undefined;
  secretFile: string | undefined;
  tlsFiles: { ca?: string; cert?: string; key?: string };
}


const COMMANDS = new Set(['state', 'stats', 'quiesce', 'quiesce-undo', 'recluster', 'wait-migrations']);
const POLL_INTERVAL_MS = 250;
/**
 * wait-migrations reports a settled cluster only once it has looked settled, under one cluster
 * key, for this many heartbeat intervals: a node started just before is heard within one.
 */
const SETTLED_HEARTBEATS = 3;
/** The version of the --json schema (docs/cluster.md, "The CLI's JSON"); bumped on any incompatible change. */
const JSON_SCHEMA_VERSION = 1;
/** Fields stats() copies into every namespace in cluster mode; --json prints them once, under cluster. */
const CLUSTER_FIELDS_IN_NAMESPACES = ['clusterSize', 'clusterKey', 'migratePartitionsRemaining'];

const HELP: Record<string, string> = {
  state: 'shoal state <host:port> [--json]\n  The node\'s view of the cluster (members, principal, quiesced nodes, changes pending until\n  the next rebalance, migrations) and its namespace figures.',
  stats: 'shoal stats <host:port> [--json]\n  The node\'s namespace figures (db.stats()).',
  quiesce: 'shoal quiesce <host:port>\n  Mark the node to hand off its partitions at the next rebalance; `shoal recluster` starts it.',
  'quiesce-undo': 'shoal quiesce-undo <host:port>\n  Revert quiesce (effective at the next rebalance).',
  recluster: 'shoal recluster <host:port>\n  Start a rebalance now, with the current quiesce flags.',
  'wait-migrations':
    'shoal wait-migrations <host:port> [--size N] [--timeout-ms N] [--json]\n' +
    '  Wait until the cluster-wide rebalance is over: no member has partitions left to migrate, no\n' +
    '  node is heard that is not a member (or the reverse), no quiesce waits for a recluster, and\n' +
    `  this has held for ${SETTLED_HEARTBEATS} heartbeat intervals. --size N also waits for N members. A progress bar is\n` +
    '  drawn on stderr when it is a terminal. Exit 1 after --timeout-ms (default 600000).',
  serve: 'shoal serve CONFIG.json\n  Run a standalone server (docs/protocol.md, "shoal serve").',
  ...OPERATOR_HELP,
};

const USAGE =
  'usage: shoal <state|stats|quiesce|quiesce-undo|recluster|wait-migrations> <host:port> [--json] [--cluster-name NAME] [--timeout-ms N]\n' +
  '             [--secret-file FILE] [--tls-ca FILE --tls-cert FILE --tls-key FILE]   (or the secret in SHOAL_CLUSTER_SECRET)\n' +
  OPERATOR_USAGE +
  '       shoal serve CONFIG.json\n' +
  '       shoal COMMAND --help\n';

function usage(message: string): never {
  process.stderr.write(`shoal: ${message}\n`);
  process.stderr.write(USAGE);
  process.exit(2);
}

/** --help: the command's help, or the usage, on stdout; exit 0. */
function help(command: string | undefined): never {
  const text = command !== undefined && HELP[command] !== undefined ? `usage: ${HELP[command]}\n` : USAGE;
  process.stdout.write(text);
  process.exit(0);
}

function parse(argv: string[]): Arguments {
  const positional: string[] = [];
  let json = false;
  let clusterName: string | undefined;
  let timeoutMs: number | undefined;
  let size: number | undefined;
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
    } else if (arg === '--size') {
      size = Number(argv[++i]);
      if (!Number.isInteger(size) || size <= 0) usage('--size needs a positive integer');
    } else if (arg === '--help' || arg === '-h') help(positional[0] ?? argv.find((a) => COMMANDS.has(a)));
    else if (arg.startsWith('--')) usage(`unknown option ${arg}`);
    else positional.push(arg);
  }
  const [command, address] = positional;
  if (command === undefined || !COMMANDS.has(command)) usage(`unknown command ${command ?? '(none)'}`);
  if (address === undefined || !/^[^:\s]+:\d+$/.test(address)) usage('the node address must be host:port (its cluster listen address)');
  if (positional.length > 2) usage(`unexpected argument ${positional[2]}`);
  if (size !== undefined && command !== 'wait-migrations') usage('--size is an option of wait-migrations');
  const tlsGiven = Object.keys(tlsFiles).length;
  if (tlsGiven > 0 && tlsGiven < 3) usage('TLS needs all three of --tls-ca, --tls-cert and --tls-key');
  return { command, address, json, size, clusterName, timeoutMs, secretFile, tlsFiles };
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
    `pending      ${describePending(state)}`,
    `partitions   master ${state.partitions.master}   replica ${state.partitions.replica}`,
    `migrations   ${state.migrationsRemaining} remaining here, ${state.clusterMigrationsRemaining ?? '?'} cluster-wide; cluster ${settled(state) ? 'settled' : 'migrating'}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  printStats(state);
}

/** The changes waiting for the next rebalance, as `state` prints them. */
function describePending(state: AdminState): string {
  const pending = state.pending;
  if (pending === undefined) return '(not reported by this node)';
  const parts = [
    pending.quiesce.length > 0 ? `quiesce ${pending.quiesce.join(', ')} (at the next recluster)` : '',
    pending.quiesceUndo.length > 0 ? `quiesce-undo ${pending.quiesceUndo.join(', ')} (at the next recluster)` : '',
    pending.joining.length > 0 ? `joining ${pending.joining.join(', ')}` : '',
    pending.leaving.length > 0 ? `leaving ${pending.leaving.join(', ')}` : '',
  ].filter((part) => part !== '');
  return parts.length === 0 ? '(none)' : parts.join('; ');
}

/** Whether nothing is left to migrate anywhere and no rebalance is pending. */
function settled(state: AdminState): boolean {
  const pending = state.pending;
  const nothingPending = pending === undefined || (pending.joining.length + pending.leaving.length + pending.quiesce.length + pending.quiesceUndo.length === 0);
  return state.migrationsSettledClusterWide && state.migrationsRemaining === 0 && nothingPending;
}

/** The --json object (docs/cluster.md, "The CLI's JSON"): versioned, cluster fields once. */
function jsonOutput(command: string, state: AdminState): unknown {
  const namespaces: Record<string, Record<string, unknown>> = {};
  for (const [name, figures] of Object.entries(state.stats?.namespaces ?? {})) {
    namespaces[name] = Object.fromEntries(Object.entries(figures).filter(([field]) => !CLUSTER_FIELDS_IN_NAMESPACES.includes(field)));
  }
  if (command === 'stats') return { schemaVersion: JSON_SCHEMA_VERSION, command, nodeId: state.nodeId, namespaces };
  const { stats: _stats, ...cluster } = state;
  return { schemaVersion: JSON_SCHEMA_VERSION, command, ...cluster, settled: settled(state), namespaces };
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

/**
 * Polls until the rebalance is over cluster-wide (settled() held, under one cluster key and
 * with --size members if given, for SETTLED_HEARTBEATS heartbeat intervals). The bar, on
 * stderr and only when it is a terminal, counts the partitions left on all members.
 * @throws Error after the timeout.
 */
async function waitForMigrations(client: AdminClient, args: Arguments): Promise<AdminState> {
  const timeoutMs = args.timeoutMs ?? 600_000;
  const deadline = Date.now() + timeoutMs;
  let peak = 0;
  let settledSince: { key: string; ms: number } | undefined;
  const interactive = !args.json && process.stderr.isTTY === true;
  for (;;) {
    const state = (await client.request('admin-state')) as AdminState;
    const remaining = state.clusterMigrationsRemaining ?? state.migrationsRemaining;
    peak = Math.max(peak, remaining);
    const done = settled(state) && (args.size === undefined || state.succession.length === args.size);
    if (!done) settledSince = undefined;
    else if (settledSince === undefined || settledSince.key !== state.clusterKey) settledSince = { key: state.clusterKey, ms: Date.now() };
    if (interactive) {
      const phase = done ? 'settling' : state.pending !== undefined && describePending(state) !== '(none)' ? `rebalance pending: ${describePending(state)}` : 'migrating';
      process.stderr.write(`\r\x1b[K${progressBar(peak - remaining, peak)} ${remaining} partitions left in the cluster (size ${state.succession.length}), ${phase}`);
    }
    const windowMs = SETTLED_HEARTBEATS * (state.heartbeatIntervalMs ?? POLL_INTERVAL_MS);
    if (settledSince !== undefined && Date.now() - settledSince.ms >= windowMs) {
      if (interactive) process.stderr.write('\n');
      return state;
    }
    if (Date.now() > deadline) {
      if (interactive) process.stderr.write('\n');
      throw new Error(`migrations still running after ${timeoutMs} ms (${remaining} partitions left, size ${state.succession.length}; pending: ${describePending(state)})`);
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
  }
}

async function main(): Promise<void> {
  if (process.argv[2] === 'serve' && (process.argv[3] === '--help' || process.argv[3] === '-h')) help('serve');
  if (process.argv[2] === 'serve') return serve(process.argv.slice(3));
  if (OPERATOR_COMMANDS.has(process.argv[2] ?? '')) {
    if (process.argv.includes('--help') || process.argv.includes('-h')) help(process.argv[2]);
    try {
      return await runOperatorCommand(process.argv.slice(2));
    } catch (error) {
      if (error instanceof UsageError) usage(error.message);
      throw error;
    }
  }
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
      process.stdout.write(`${JSON.stringify(jsonOutput(args.command, state), (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}\n`);
    } else if (args.command === 'stats') {
      printStats(state);
    } else {
      if (args.command === 'wait-migrations') process.stdout.write('wait-migrations: cluster settled\n');
      else if (args.command !== 'state') process.stdout.write(`${args.command}: done\n`);
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
