/**
 * One client process of the Redis side of the cluster throughput bench: ioredis's Cluster
 * client over the seed port given, `inFlight` workers issuing SET of a JSON record or GET and
 * JSON.parse (what a Node cache user of Redis does) of random keys for `durationMs`, then
 * prints { opsPerSecond, errors, p50Us, p99Us } as JSON.
 * argv: port kind(put|get) inFlight durationMs keys
 */
import { Cluster } from 'ioredis';

async function main(): Promise<void> {
  const [port, kind, inFlight, durationMs, keys] = process.argv.slice(2);
  const client = new Cluster([{ host: '127.0.0.1', port: Number(port) }], { scaleReads: 'master' });
  await client.get('warm-up');
  const latenciesUs: number[] = [];
  let errors = 0;
  const end = performance.now() + Number(durationMs);
  const worker = async () => {
    while (performance.now() < end) {
      const i = Math.floor(Math.random() * Number(keys));
      const key = `bench:s:${i}`;
      const started = performance.now();
      try {
        if (kind === 'put') await client.set(key, JSON.stringify({ v: i, name: `user-${i}`, city: 'Lisbon' }));
        else {
          const text = await client.get(key);
          if (text !== null) JSON.parse(text);
        }
        latenciesUs.push((performance.now() - started) * 1000);
      } catch {
        errors++;
      }
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: Number(inFlight) }, worker));
  const seconds = (performance.now() - started) / 1000;
  latenciesUs.sort((a, b) => a - b);
  const at = (q: number) => latenciesUs[Math.min(latenciesUs.length - 1, Math.floor(q * latenciesUs.length))] ?? 0;
  process.stdout.write(`${JSON.stringify({ opsPerSecond: latenciesUs.length / seconds, errors, p50Us: at(0.5), p99Us: at(0.99) })}\n`);
  client.disconnect();
}

main().catch((error: unknown) => {
  process.stderr.write(`redis load client failed: ${String(error)}\n`);
  process.exit(1);
});
