/**
 * The listener's life: `open({ service })` exposes db.service.address and close() stops it;
 * `shoal serve CONFIG.json` refuses bad configurations with a clear message and exit status,
 * and stops cleanly on SIGTERM (the next start is warm, the data still there).
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import Aerospike from 'aerospike';
import { open } from '../lib/index';
import { runNode } from './helpers/child';
import { cleanupTempDirs, tempDir } from './helpers/temp';
import { SHOAL_CLI, clientConfig, serveNode, stopNode } from './helpers/service-server';

afterAll(() => cleanupTempDirs());

function connectable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

describe('open({ service })', () => {
  it('gives db.service.address, answers on it, and stops listening at close', async () => {
    const db = await open({ dataDir: tempDir(), sharedMemoryIndex: false, namespaces: [{ name: 'test', storage: { type: 'memory', maxBytes: 1 << 20 } }], service: { listen: { host: '127.0.0.1', port: 0 } } });
    const { host, port } = db.service!.address;
    expect(host).toBe('127.0.0.1');
    expect(port).toBeGreaterThan(0);
    expect(await connectable(port)).toBe(true);
    expect(db.service!.stats().connectionsOpened).toBeGreaterThanOrEqual(1);
    await db.close();
    expect(await connectable(port)).toBe(false);
  });

  it('fails to open when the port is taken, leaving nothing open', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    const dataDir = tempDir();
    const options = { dataDir, sharedMemoryIndex: false, namespaces: [{ name: 'test', storage: { type: 'memory' as const, maxBytes: 1 << 20 } }], service: { listen: { host: '127.0.0.1', port } } };
    await expect(open(options)).rejects.toMatchObject({ code: 'IO_ERROR' });
    blocker.close();
    // The namespace was closed again: a second open of the same data succeeds.
    const db = await open({ ...options, service: undefined });
    await db.close();
  });
});

describe('shoal serve', () => {
  it('refuses bad usage and bad configurations with a message', async () => {
    const dir = tempDir();
    expect((await runNode(SHOAL_CLI, ['serve'])).code).toBe(2);
    const missing = await runNode(SHOAL_CLI, ['serve', path.join(dir, 'none.json')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/cannot read/);
    fs.writeFileSync(path.join(dir, 'bad.json'), '{ not json');
    expect((await runNode(SHOAL_CLI, ['serve', path.join(dir, 'bad.json')])).stderr).toMatch(/is not JSON/);
    fs.writeFileSync(path.join(dir, 'noservice.json'), JSON.stringify({ namespaces: [] }));
    expect((await runNode(SHOAL_CLI, ['serve', path.join(dir, 'noservice.json')])).stderr).toMatch(/no "service" section/);
    fs.writeFileSync(path.join(dir, 'wide.json'), JSON.stringify({ namespaces: [{ name: 'test', storage: { type: 'memory', maxBytes: 1 << 20 } }], service: { listen: { host: '0.0.0.0', port: 0 }, advertise: '127.0.0.1:3000' } }));
    const wide = await runNode(SHOAL_CLI, ['serve', path.join(dir, 'wide.json')]);
    expect(wide.code).toBe(1);
    expect(wide.stderr).toMatch(/service.users/);
  });

  it('stops cleanly on SIGTERM; the next start finds the data', async () => {
    const dataDir = tempDir();
    const namespaces = [{ name: 'test', storage: { type: 'device', paths: ['test.dat'], sizeBytes: 16 << 20, writeBlockBytes: 1 << 17, commitToDevice: true }, maxRecordBytes: 64 << 10 }];
    const first = await serveNode({ dataDir, namespaces });
    const key = new Aerospike.Key('test', 'serve', 'kept');
    let client = await Aerospike.connect(clientConfig(first));
    await client.put(key, { v: 'before the restart' });
    await client.close();
    await stopNode(first);
    expect(first.child.signalCode).toBe('SIGTERM');
    expect(first.stderr()).not.toMatch(/error/i);
    const second = await serveNode({ dataDir, namespaces });
    expect(second.node).toBe(first.node);
    client = await Aerospike.connect(clientConfig(second));
    expect((await client.get(key)).bins).toEqual({ v: 'before the restart' });
    await client.close();
    await stopNode(second);
  });
});
