#!/usr/bin/env node
/**
 * The table of scripts/bench-compare.sh: node scripts/bench-compare-table.js DIR BUILD...
 * For each figure of the memory and storage benches, per build, the median over its runs (and
 * each run), and for Shoal's rows the median of the ratio to the peer measured in the same run:
 * the machine's drift between runs moves both, so the ratio is the steadier figure.
 */
const fs = require('node:fs');
const path = require('node:path');

const [dir, ...builds] = process.argv.slice(2);
const figure = (name, pattern) => ({ name, pattern: new RegExp(pattern) });
const FIGURES = [
  figure('memory getSync', /shoal getSync\s+([\d,]+)/),
  figure('memory get (await)', /shoal get \(await\)\s+([\d,]+)/),
  figure('memory put (await)', /shoal put \(await\)\s+([\d,]+)/),
  figure('lru-cache get+unpack', /lru-cache get\+unpack\s+([\d,]+)/),
  figure('lru-cache pack+set', /lru-cache pack\+set\s+([\d,]+)/),
  figure('device bulk insert, put', /no await each\)\s+([\d,]+)/),
  figure('device bulk insert, batchPut', /shoal bulk insert \(batchPut of [\d,]+\)\s+([\d,]+)/),
  figure('device get (64 in flight)', /get from device \(64 in flight\)\s+([\d,]+)/),
  figure('raw 4 KiB reads (64 in flight)', /raw \(64 in flight\)\s+([\d,]+)/),
  figure('durable put (256 concurrent)', /durable put \(256 concurrent\)\s+([\d,]+)/),
  figure('cold start scan, MB/s', /device scan .*? = ([\d,]+) MB\/s/),
  figure('dataInMemory batchPut', /dataInMemory \(batchPut of [\d,]+\)\s+([\d,]+)/),
  figure('dataInMemory getSync', /getSync, dataInMemory \(random\)\s+([\d,]+)/),
  figure('lmdb batched put', /lmdb batched async put\s+([\d,]+)/),
  figure('lmdb get', /lmdb get \(random\)\s+([\d,]+)/),
];
/** Shoal's row over the same run's peer row. */
const RATIOS = [
  ['memory getSync', 'lru-cache get+unpack'],
  ['memory put (await)', 'lru-cache pack+set'],
  ['device bulk insert, batchPut', 'lmdb batched put'],
  ['device bulk insert, put', 'lmdb batched put'],
  ['dataInMemory batchPut', 'lmdb batched put'],
  ['dataInMemory getSync', 'lmdb get'],
  ['device get (64 in flight)', 'raw 4 KiB reads (64 in flight)'],
];

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

function runsOf(build) {
  return fs
    .readdirSync(dir)
    .filter((name) => name.startsWith(`${build}-r`) && name.endsWith('.txt'))
    .map((name) => {
      const text = fs.readFileSync(path.join(dir, name), 'utf8');
      const values = {};
      for (const { name: figureName, pattern } of FIGURES) {
        const match = pattern.exec(text);
        if (match) values[figureName] = Number(match[1].replace(/,/g, ''));
      }
      return values;
    });
}

const runs = Object.fromEntries(builds.map((build) => [build, runsOf(build)]));
const cell = (values, digits) => (values.length === 0 ? '-' : `${median(values).toFixed(digits)} (${values.map((v) => v.toFixed(digits)).join(', ')})`);
console.log(`| figure | ${builds.join(' | ')} |`);
console.log(`| --- |${' ---: |'.repeat(builds.length)}`);
for (const { name } of FIGURES) {
  console.log(`| ${name} | ${builds.map((b) => cell(runs[b].map((r) => r[name]).filter((v) => v !== undefined).map((v) => (v > 10_000 ? v / 1000 : v)), 0)).join(' | ')} |`);
}
console.log('\n(figures in thousands per second above 10,000)\n');
console.log(`| ratio in the same run | ${builds.join(' | ')} |`);
console.log(`| --- |${' ---: |'.repeat(builds.length)}`);
for (const [shoal, peer] of RATIOS) {
  const ratios = (b) => runs[b].filter((r) => r[shoal] !== undefined && r[peer] !== undefined).map((r) => r[shoal] / r[peer]);
  console.log(`| ${shoal} / ${peer} | ${builds.map((b) => cell(ratios(b), 2)).join(' | ')} |`);
}
