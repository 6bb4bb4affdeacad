/**
 * What every operator command needs to reach a node: the cluster secret (--secret-file or
 * SHOAL_CLUSTER_SECRET) and TLS material (--tls-ca, --tls-cert, --tls-key), read from files.
 */
import * as fs from 'node:fs';
import type { TlsSettings } from '../lib/cluster/index';

/** Environment variable holding the cluster secret (when --secret-file is not given). */
export const SECRET_ENVIRONMENT_VARIABLE = 'SHOAL_CLUSTER_SECRET';

export interface ConnectionArguments {
  secretFile: string | undefined;
  tlsFiles: { ca?: string; cert?: string; key?: string };
}

/**
 * The secret from `file` (one trailing newline stripped, so a file written by `echo` works),
 * or from `environment` when no file is given; undefined if neither is.
 * @throws Error if the file cannot be read.
 */
export function readSecretFile(file: string | undefined, environment: string | undefined = SECRET_ENVIRONMENT_VARIABLE): Buffer | undefined {
  if (file === undefined) {
    const value = environment === undefined ? undefined : process.env[environment];
    return value === undefined || value === '' ? undefined : Buffer.from(value, 'utf8');
  }
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
    if ((fs.statSync(file).mode & 0o077) !== 0) process.stderr.write(`shoal: warning: ${file} is readable by other users (chmod 600 it)\n`);
  } catch (error) {
    throw new Error(`cannot read the secret file: ${(error as Error).message}`);
  }
  const end = bytes.length - (bytes.subarray(-2).toString() === '\r\n' ? 2 : bytes.subarray(-1).toString() === '\n' ? 1 : 0);
  return bytes.subarray(0, end);
}

/** The cluster secret of the command line. @throws Error if the file cannot be read. */
export function readSecret(args: ConnectionArguments): Buffer | undefined {
  return readSecretFile(args.secretFile);
}

/** The TLS material from the --tls-* files; undefined without them. @throws Error if a file cannot be read. */
export function readTls(args: ConnectionArguments): TlsSettings | undefined {
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
