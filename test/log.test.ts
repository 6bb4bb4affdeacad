/**
 * open()'s `log` as a leveled logger of pino's shape: Shoal's messages arrive at the right
 * level with structured fields (component, namespace; the cluster's own fields, bigints as
 * strings); a function still gets plain lines; anything else is a TypeError.
 */
import { describe, expect, it } from 'vitest';
import { open } from '../lib/index';
import { resolveLog, type LeveledLogger } from '../lib/log';
import { track, useDbCleanup } from './helpers/db';
import { tempDir } from './helpers/temp';

useDbCleanup(['disk']);

interface Entry {
  level: string;
  fields: Record<string, unknown>;
  message: string;
}

function recorder(): { entries: Entry[]; logger: Required<LeveledLogger> } {
  const entries: Entry[] = [];
  const at = (level: string) => (fields: Record<string, unknown>, message: string) => entries.push({ level, fields, message });
  return { entries, logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') } };
}

describe('log: a leveled logger', () => {
  it('gets a namespace message with its component and namespace as fields', async () => {
    const { entries, logger } = recorder();
    const dataDir = tempDir();
    const options = {
      dataDir,
      sharedMemoryIndex: false,
      namespaces: [{ name: 'disk', storage: { type: 'device' as const, paths: ['d.dat'], sizeBytes: 16 << 20 } }],
      log: logger,
    };
    const first = await open(options);
    await first.put({ ns: 'disk', key: 1 }, { a: 1 });
    await first.close({ dropIndex: true });
    // No index in any form (no shared memory, no index checkpoint): the reopen is a cold start
    // from the device, which is logged.
    const again = track(await open(options));
    expect(await again.get({ ns: 'disk', key: 1 })).toMatchObject({ bins: { a: 1 } });
    const cold = entries.find((entry) => /cold start from the devices/.test(entry.message));
    expect(cold, JSON.stringify(entries)).toBeDefined();
    expect(cold!.level).toBe('warn');
    expect(cold!.fields).toEqual({ component: 'namespace', namespace: 'disk' });
    expect(cold!.message.startsWith('namespace disk:')).toBe(false);
  });

  it('gets cluster messages at their own level with their fields, bigints as strings', () => {
    const { entries, logger } = recorder();
    const { clusterLogger, log } = resolveLog(logger);
    clusterLogger.info('cluster: view adopted', { clusterKey: 'ab12', epoch: 3n });
    clusterLogger.debug('cluster: proposing view', { succession: ['a', 'b'] });
    clusterLogger.error('cluster: peer refused', { peer: 'n2' });
    log('service: a request failed: boom');
    log('something else');
    expect(entries).toEqual([
      { level: 'info', fields: { component: 'cluster', clusterKey: 'ab12', epoch: '3' }, message: 'cluster: view adopted' },
      { level: 'debug', fields: { component: 'cluster', succession: ['a', 'b'] }, message: 'cluster: proposing view' },
      { level: 'error', fields: { component: 'cluster', peer: 'n2' }, message: 'cluster: peer refused' },
      { level: 'warn', fields: { component: 'service' }, message: 'a request failed: boom' },
      { level: 'warn', fields: { component: 'shoal' }, message: 'something else' },
    ]);
    // A logger without debug and info (only the two levels Shoal needs) is accepted.
    const partial = resolveLog({ warn: () => undefined, error: () => undefined });
    expect(() => partial.clusterLogger.debug('x')).not.toThrow();
  });

  it('a function still gets plain lines; other values are a TypeError', async () => {
    const lines: string[] = [];
    const { clusterLogger, log } = resolveLog((line: string) => lines.push(line));
    clusterLogger.warn('cluster: slow peer', { peer: 'n2', lagMs: 5n });
    clusterLogger.info('dropped');
    log('namespace disk: cold start');
    expect(lines).toEqual(['cluster warn: cluster: slow peer {"peer":"n2","lagMs":"5"}', 'namespace disk: cold start']);
    for (const bad of ['console', 5, { info: () => undefined }, null]) {
      await expect(open({ dataDir: tempDir(), namespaces: [{ name: 'disk', storage: { type: 'memory', maxBytes: 16 << 20 } }], log: bad as never })).rejects.toThrow(TypeError);
    }
  });
});
