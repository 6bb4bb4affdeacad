/**
 * `npm run bench -- udf`: record UDFs through the official client against `shoal serve` (a
 * memory namespace), beside the commands they replace, in the same run: a get, an operate
 * that increments a bin, and client.apply of a Lua function that increments the same bin (read,
 * Lua in the UDF worker, generation-checked write), at 1 and 64 in flight. Then gets at 64 in
 * flight while another connection keeps running `while true do end` (each call stopped by the
 * instruction budget): the Db's event loop does not wait for Lua.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LoopResult, closedLoop, print, serve } from './protocol';

const TIME_MS = Number(process.env.BENCH_TIME_MS ?? 3000);
const KEYS = 10_000;
const MODULE = 'function bump(rec)\n  rec.n = (rec.n or 0) + 1\n  aerospike:update(rec)\n  return rec.n\nend\nfunction spin(rec) while true do end end\n';

export async function runUdfBench(): Promise<boolean> {
  const Aerospike = (await import('aerospike')).default;
  const server = await serve();
  const client = await Aerospike.connect({ hosts: [{ addr: '127.0.0.1', port: server.port }], log: { level: Aerospike.log.OFF }, maxConnsPerNode: 300 });
  const results = new Map<string, LoopResult>();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-bench-udf-'));
  try {
    const file = path.join(dir, 'bench_udf.lua');
    fs.writeFileSync(file, MODULE);
    await (await client.udfRegister(file)).wait(20);
    const keys = Array.from({ length: KEYS }, (_, i) => new Aerospike.Key('test', 'bench', `udf:${i}`));
    for (let i = 0; i < KEYS; i += 64) await Promise.all(keys.slice(i, i + 64).map((key) => client.put(key, { n: 0 })));
    const policy = { totalTimeout: 10_000 };
    const commands: Record<string, (i: number) => Promise<unknown>> = {
      get: (i) => client.get(keys[i]!, policy),
      'operate incr': (i) => client.operate(keys[i]!, [Aerospike.operations.incr('n', 1)], {}, policy),
      'apply (Lua incr)': (i) => client.apply(keys[i]!, { module: 'bench_udf', funcname: 'bump' }, policy),
    };
    for (const inflight of [1, 64]) {
      for (const [name, command] of Object.entries(commands)) results.set(`${name} ${inflight}`, await closedLoop(inflight, TIME_MS, command));
    }
    let spinning = true;
    let spins = 0;
    const spinner = (async () => {
      while (spinning) {
        await client.apply(keys[0]!, { module: 'bench_udf', funcname: 'spin' }, policy).catch(() => undefined);
        spins++;
      }
    })();
    results.set('get 64 beside a spinning UDF', await closedLoop(64, TIME_MS, commands.get!));
    spinning = false;
    await spinner;
    process.stdout.write(`\nudf: the official client against shoal serve (memory namespace, ${os.cpus().length} cores, load average ${os.loadavg()[0]!.toFixed(1)})\n`);
    for (const [name, result] of results) print(name, result);
    process.stdout.write(`  spinning calls stopped by the budget meanwhile: ${spins}\n`);
    for (const inflight of [1, 64]) {
      const apply = results.get(`apply (Lua incr) ${inflight}`)!;
      const operate = results.get(`operate incr ${inflight}`)!;
      process.stdout.write(`  apply / operate at ${inflight} in flight: ${(operate.opsPerSecond / apply.opsPerSecond).toFixed(1)}x the time per command (p50 ${(apply.p50Us / operate.p50Us).toFixed(1)}x)\n`);
    }
    const beside = results.get('get 64 beside a spinning UDF')!;
    process.stdout.write(`  gets beside a spinning UDF: ${(beside.opsPerSecond / results.get('get 64')!.opsPerSecond).toFixed(2)}x the throughput of gets alone, p99 ${beside.p99Us.toFixed(0)} µs\n`);
  } finally {
    await client.close();
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return true;
}
