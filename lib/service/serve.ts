/**
 * `shoal serve CONFIG.json`: Shoal as a standalone server (README, "Shoal as a server"). The
 * configuration file holds open()'s options as JSON: `dataDir` (relative paths are resolved
 * against the file's folder), `namespaces`, `service` (required), and `cluster` to join a
 * cluster. Once the listener is up, one JSON line goes to stdout:
 *
 *   {"event":"ready","service":{"host":"127.0.0.1","port":3000},"node":"<protocol name>","cluster":"<fabric host:port>"|null}
 *
 * Log lines go to stderr. SIGTERM or SIGINT closes the Db cleanly (the next start is warm).
 * Exit status: 0 after a clean stop, 1 when the server could not start, 2 for a usage error.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { open, type OpenOptionsWithLog } from '../open';

function usage(message: string): never {
  process.stderr.write(`shoal serve: ${message}\nusage: shoal serve CONFIG.json\n`);
  process.exit(2);
}

/**
 * Reads a serve configuration file.
 * @throws Error naming the file when it cannot be read or is not a JSON object with `service`.
 */
export function readServeConfig(file: string): OpenOptionsWithLog {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new Error(`cannot read ${file}: ${(error as Error).message}`);
  }
  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch (error) {
    throw new Error(`${file} is not JSON: ${(error as Error).message}`);
  }
  if (config === null || typeof config !== 'object' || Array.isArray(config)) throw new Error(`${file} must hold a JSON object of open() options`);
  const options = config as OpenOptionsWithLog & { log?: unknown };
  if (options.service === undefined) throw new Error(`${file} has no "service" section: shoal serve needs service.listen`);
  if (options.log !== undefined) throw new Error(`${file}: "log" cannot be set in a configuration file (log lines go to stderr)`);
  const base = path.dirname(path.resolve(file));
  return { ...options, dataDir: path.resolve(base, options.dataDir ?? './shoal-data') };
}

/** Runs the server until a signal stops it. */
export async function serve(argv: string[]): Promise<void> {
  if (argv.length !== 1 || argv[0]!.startsWith('-')) usage(argv.length === 0 ? 'a configuration file is needed' : `unexpected arguments ${argv.join(' ')}`);
  let db;
  try {
    const options = readServeConfig(argv[0]!);
    db = await open({ ...options, log: (message) => process.stderr.write(`shoal: ${message}\n`) });
  } catch (error) {
    process.stderr.write(`shoal serve: ${(error as Error).message}\n`);
    process.exit(1);
  }
  const ready = {
    event: 'ready',
    service: db.service!.address,
    node: db.service!.topology.nodeName,
    cluster: db.cluster?.address ?? null,
  };
  process.stdout.write(`${JSON.stringify(ready)}\n`);
}
