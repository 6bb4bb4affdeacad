/**
 * npm run bench: every benchmark but the io-engine, protocol, cluster, cluster-throughput, cluster-security, metrics, xdr and udf comparisons (run them by name), or the ones
 * named on the command line (`npm run bench -- memory storage`). Figures are printed; targets say MET or NOT MET.
 */
import { runCdtBench } from './cdt';
import { runClusterBench } from './cluster';
import { runClusterSecurityBench } from './cluster-security';
import { runClusterThroughputBench } from './cluster-throughput';
import { runIoEngineBench } from './io-engine';
import { runMemoryBench } from './memory';
import { runMetricsBench } from './metrics';
import { runProtocolBench } from './protocol';
import { runRestartBench } from './restart';
import { runStorageBench } from './storage';
import { runUdfBench } from './udf';
import { runWritePathBench } from './write-path';
import { runXdrBench } from './xdr';

const suites: Record<string, () => Promise<boolean>> = {
  memory: runMemoryBench,
  metrics: runMetricsBench,
  storage: runStorageBench,
  restart: runRestartBench,
  'io-engine': runIoEngineBench,
  'write-path': runWritePathBench,
  protocol: runProtocolBench,
  cdt: runCdtBench,
  cluster: runClusterBench,
  'cluster-throughput': runClusterThroughputBench,
  'cluster-security': runClusterSecurityBench,
  xdr: runXdrBench,
  udf: runUdfBench,
};

async function main(): Promise<void> {
  const wanted = process.argv.slice(2).filter((arg) => !arg.startsWith('-'));
  const names = wanted.length > 0 ? wanted : Object.keys(suites).filter((name) => !['io-engine', 'protocol', 'cluster', 'cluster-throughput', 'cluster-security', 'metrics', 'xdr', 'udf'].includes(name));
  process.stdout.write(`shoal benchmarks on ${process.version}, ${require('node:os').cpus().length} cores: ${names.join(', ')}\n`);
  for (const name of names) {
    const suite = suites[name];
    if (suite === undefined) throw new Error(`unknown benchmark ${name}; known: ${Object.keys(suites).join(', ')}`);
    await suite();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
