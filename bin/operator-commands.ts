/**
 * The CLI's XDR, backup and restore commands (docs/xdr.md, "CLI"; docs/backup.md), over the
 * admin connection to any node:
 *
 *   shoal xdr state <host:port> [--json]
 *   shoal xdr add-destination <host:port> --name N --seeds H:P[,H:P] --namespaces NS[,NS]
 *         [--dest-cluster-name NAME] [--rewind all|none] [--dest-secret-file FILE] [--node-only]
 *   shoal xdr remove-destination <host:port> --name N [--node-only]
 *   shoal xdr wait-shipped <host:port> [--timeout-ms N]
 *   shoal backup <host:port> --ns NS [--set S] --out FILE [--resume]
 *   shoal restore <host:port> --in FILE [--policy newer|replace|skipExisting] [--ns NS]
 *
 * Each also takes --cluster-name, --secret-file, --tls-ca/--tls-cert/--tls-key and
 * --timeout-ms as the other commands do. Exit status: 0 done, 1 failed, 2 usage error.
 */
import { AdminClient, type AdminRequest } from '../lib/cluster/index';
import { backupToFile, restoreFromFile, type BackupProgress, type RestorePolicy, type RestoreProgress } from '../lib/backup/index';
import type { XdrDestinationState } from '../lib/xdr/index';
import { type ConnectionArguments, readSecret, readSecretFile, readTls } from './connection-options';

export const OPERATOR_COMMANDS: ReadonlySet<string> = new Set(['xdr', 'backup', 'restore']);
const XDR_SUBCOMMANDS: ReadonlySet<string> = new Set(['state', 'add-destination', 'remove-destination', 'wait-shipped']);
const POLICIES: readonly RestorePolicy[] = ['newer', 'replace', 'skipExisting'];
/** Options that take a value, and the flags that take none. */
const VALUE_OPTIONS = new Set(['--cluster-name', '--secret-file', '--tls-ca', '--tls-cert', '--tls-key', '--timeout-ms', '--name', '--seeds', '--namespaces', '--dest-cluster-name', '--rewind', '--dest-secret-file', '--ns', '--set', '--out', '--in', '--policy']);
const FLAGS = new Set(['--json', '--node-only', '--resume']);

export const OPERATOR_HELP: Record<string, string> = {
  xdr:
    'shoal xdr state <host:port> [--json]                 this node\'s shipping state per destination (db.xdr.state())\n' +
    '  shoal xdr add-destination <host:port> --name N --seeds H:P[,H:P] --namespaces NS[,NS] [--dest-cluster-name NAME]\n' +
    '        [--rewind all|none] [--dest-secret-file FILE] [--node-only]   add a destination on every member (or this node)\n' +
    '  shoal xdr remove-destination <host:port> --name N [--node-only]\n' +
    '  shoal xdr wait-shipped <host:port> [--timeout-ms N]  wait until every write acknowledged before it has shipped',
  backup:
    'shoal backup <host:port> --ns NS [--set S] --out FILE [--resume]\n' +
    '  Back a namespace up into a Shoal backup file (docs/backup.md): partition by partition from each master,\n' +
    '  a progress bar on a terminal, checksums in the file. --resume continues an interrupted file.',
  restore:
    'shoal restore <host:port> --in FILE [--policy newer|replace|skipExisting] [--ns NS]\n' +
    '  Check the whole file, then load it: newer (default) keeps whichever copy wins by the namespace\'s\n' +
    '  conflict rule, replace makes the file\'s copy the latest write, skipExisting leaves existing records.',
};

export const OPERATOR_USAGE =
  '       shoal xdr <state|add-destination|remove-destination|wait-shipped> <host:port> [options]\n' +
  '       shoal backup <host:port> --ns NS [--set S] --out FILE [--resume]\n' +
  '       shoal restore <host:port> --in FILE [--policy newer|replace|skipExisting] [--ns NS]\n';

interface Parsed extends ConnectionArguments {
  command: string;
  subcommand: string | undefined;
  address: string;
  values: Map<string, string>;
  flags: Set<string>;
  timeoutMs: number | undefined;
}

/** A usage error: exit 2 with the message. */
export class UsageError extends Error {}

function parse(argv: string[]): Parsed {
  const [command, ...rest] = argv;
  const positional: string[] = [];
  const values = new Map<string, string>();
  const flags = new Set<string>();
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!;
    if (FLAGS.has(arg)) flags.add(arg);
    else if (VALUE_OPTIONS.has(arg)) {
      const value = rest[++i];
      if (value === undefined) throw new UsageError(`${arg} needs a value`);
      values.set(arg, value);
    } else if (arg.startsWith('--')) throw new UsageError(`unknown option ${arg}`);
    else positional.push(arg);
  }
  const subcommand = command === 'xdr' ? positional.shift() : undefined;
  if (command === 'xdr' && (subcommand === undefined || !XDR_SUBCOMMANDS.has(subcommand))) throw new UsageError(`unknown xdr command ${subcommand ?? '(none)'}: one of ${[...XDR_SUBCOMMANDS].join(', ')}`);
  const [address, extra] = positional;
  if (address === undefined || !/^[^:\s]+:\d+$/.test(address)) throw new UsageError('the node address must be host:port (its cluster listen address)');
  if (extra !== undefined) throw new UsageError(`unexpected argument ${extra}`);
  const timeoutText = values.get('--timeout-ms');
  const timeoutMs = timeoutText === undefined ? undefined : Number(timeoutText);
  if (timeoutMs !== undefined && (!Number.isInteger(timeoutMs) || timeoutMs <= 0)) throw new UsageError('--timeout-ms needs a positive integer');
  const tlsFiles = { ca: values.get('--tls-ca'), cert: values.get('--tls-cert'), key: values.get('--tls-key') };
  const tlsGiven = Object.values(tlsFiles).filter((v) => v !== undefined).length;
  if (tlsGiven > 0 && tlsGiven < 3) throw new UsageError('TLS needs all three of --tls-ca, --tls-cert and --tls-key');
  return { command: command!, subcommand, address, values, flags, timeoutMs, secretFile: values.get('--secret-file'), tlsFiles: tlsGiven === 3 ? tlsFiles : {} };
}

function required(args: Parsed, name: string): string {
  const value = args.values.get(name);
  if (value === undefined || value === '') throw new UsageError(`${args.command}${args.subcommand === undefined ? '' : ` ${args.subcommand}`} needs ${name}`);
  return value;
}

function remote(args: Parsed) {
  return { clusterName: args.values.get('--cluster-name'), secret: readSecret(args), tls: readTls(args), timeoutMs: args.timeoutMs };
}

/** Runs `shoal xdr|backup|restore ...` (argv without the node and script paths). @throws UsageError, or Error when the command fails. */
export async function runOperatorCommand(argv: string[]): Promise<void> {
  const args = parse(argv);
  if (args.command === 'backup') return backup(args);
  if (args.command === 'restore') return restore(args);
  return xdr(args);
}

async function xdr(args: Parsed): Promise<void> {
  const options = remote(args);
  const waitMs = args.timeoutMs ?? 600_000;
  const client = await AdminClient.connect(args.address, { clusterName: options.clusterName, secret: options.secret, tls: options.tls, timeoutMs: args.subcommand === 'wait-shipped' ? waitMs + 5_000 : options.timeoutMs ?? 5_000 });
  try {
    const request = (type: string, fields: Record<string, unknown> = {}) => client.request(type as AdminRequest, fields);
    switch (args.subcommand) {
      case 'state':
        return printXdrState(await request('admin-xdr-state'), args.flags.has('--json'));
      case 'add-destination': {
        const destination: Record<string, unknown> = {
          name: required(args, '--name'),
          seeds: required(args, '--seeds').split(','),
          namespaces: required(args, '--namespaces').split(','),
          clusterName: args.values.get('--dest-cluster-name') ?? args.values.get('--name'),
          rewind: args.values.get('--rewind') ?? 'none',
        };
        const secret = readSecretFile(args.values.get('--dest-secret-file'), undefined);
        if (secret !== undefined) destination.secret = secret;
        return printNodes('add-destination', await request('admin-xdr-add', { destination, cluster: !args.flags.has('--node-only') }));
      }
      case 'remove-destination':
        return printNodes('remove-destination', await request('admin-xdr-remove', { name: required(args, '--name'), cluster: !args.flags.has('--node-only') }));
      default: {
        const started = Date.now();
        await request('admin-xdr-wait', { timeoutMs: waitMs, cluster: true });
        process.stdout.write(`wait-shipped: everything acknowledged before the call has shipped (${Date.now() - started} ms)\n`);
      }
    }
  } finally {
    client.close();
  }
}

function printXdrState(value: unknown, json: boolean): void {
  if (json) {
    process.stdout.write(`${JSON.stringify({ schemaVersion: 1, command: 'xdr state', ...(value as object) })}\n`);
    return;
  }
  const state = value as { destinations: Record<string, XdrDestinationState>; received: Record<string, number> };
  const names = Object.keys(state.destinations);
  if (names.length === 0) process.stdout.write('destinations (none)\n');
  for (const name of names) {
    const d = state.destinations[name]!;
    process.stdout.write(`destination ${name}: ${d.connected ? 'connected' : 'NOT CONNECTED'}  lagMs ${d.lagMs}  pending ${d.pendingRecords}  shipped ${d.shippedRecords}  conflicts ${d.conflicts}  rewind ${(d.rewindProgress * 100).toFixed(0)}%\n`);
  }
  const r = state.received;
  process.stdout.write(`received: applied ${r.applied}  stale ${r.stale}  conflicts ${r.conflicts}\n`);
}

function printNodes(command: string, value: unknown): void {
  const nodes = (value as { nodes: Record<string, string> }).nodes;
  const failed = Object.entries(nodes).filter(([, outcome]) => outcome !== 'ok');
  for (const [address, outcome] of Object.entries(nodes)) process.stdout.write(`${command} ${address}: ${outcome}\n`);
  if (failed.length > 0) throw new Error(`${command} failed on ${failed.length} of ${Object.keys(nodes).length} nodes`);
}

/** A progress line: a bar redrawn on a terminal, else a line at each quarter. */
function progressReporter(what: string): (done: number, total: number, detail: string) => void {
  let lastQuarter = -1;
  return (done, total, detail) => {
    const share = total === 0 ? 1 : done / total;
    if (process.stderr.isTTY === true) {
      const filled = Math.round(share * 30);
      process.stderr.write(`\r\x1b[K${what} [${'#'.repeat(filled)}${'.'.repeat(30 - filled)}] ${(share * 100).toFixed(0)}% ${detail}${share >= 1 ? '\n' : ''}`);
      return;
    }
    const quarter = Math.floor(share * 4);
    if (quarter === lastQuarter) return;
    lastQuarter = quarter;
    process.stderr.write(`${what}: ${(share * 100).toFixed(0)}% ${detail}\n`);
  };
}

async function backup(args: Parsed): Promise<void> {
  const ns = required(args, '--ns');
  const out = required(args, '--out');
  const report = progressReporter('backup');
  const result = await backupToFile(args.address, out, {
    ...remote(args),
    ns,
    set: args.values.get('--set'),
    resume: args.flags.has('--resume'),
    onProgress: (p: BackupProgress) => report(p.partitionsDone, p.partitions, `(${p.partitionsDone}/${p.partitions} partitions, ${p.records} records, ${p.bytes} bytes)`),
  });
  const resumed = result.resumedPartitions > 0 ? `, resumed after ${result.resumedPartitions} partitions` : '';
  process.stdout.write(`backup: ${result.records} records, ${result.bytes} bytes written to ${out}${resumed}\n`);
}

async function restore(args: Parsed): Promise<void> {
  const file = required(args, '--in');
  const policy = (args.values.get('--policy') ?? 'newer') as RestorePolicy;
  if (!POLICIES.includes(policy)) throw new UsageError(`--policy must be one of ${POLICIES.join(', ')}`);
  const report = progressReporter('restore');
  const result = await restoreFromFile(args.address, file, {
    ...remote(args),
    policy,
    ns: args.values.get('--ns'),
    onProgress: (p: RestoreProgress) => report(p.bytes, p.totalBytes, `(${p.records} records)`),
  });
  process.stdout.write(`restore: ${result.records} records read, ${result.restored} restored, ${result.skipped} skipped, ${result.expired} expired (policy ${policy})\n`);
}
