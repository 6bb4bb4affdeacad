#!/usr/bin/env node
/**
 * The shape rules of lib/ (docs/architecture.md), checked before the tests (`npm test`, CI):
 *
 * - no source file in lib/ longer than MAX_LINES lines; the files in OVER_LIMIT are the ones
 *   still waiting to be split, each held to the length it has now, so none of them grows;
 * - no import cycle among lib/'s modules, type-only imports and `export ... from` included;
 * - imports point down the layers (LAYERS): model → index/storage → namespace → db, the
 *   cluster beside the db; a file imports its own layer or lower ones only.
 *
 * Imports are read with the TypeScript compiler's own pre-processor (ts.preProcessFile): no
 * type checking, so the whole check takes well under a second. Exits 1 naming every breach.
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const ts = require('typescript');

const ROOT = path.resolve(__dirname, '..');
const LIB = path.join(ROOT, 'lib');
const MAX_LINES = 600;
/** Files not yet split (path under the repository: the most lines it may have). */
const OVER_LIMIT = {
};

/**
 * The layers of lib/, lowest first (docs/architecture.md): a path prefix under lib/ per entry,
 * the longest matching prefix deciding. A file may import files of its own layer or below.
 */
const LAYERS = [
  ['constants.ts', 'errors.ts', 'clock.ts', 'option-names.ts'],
  ['native/'],
  ['model/'],
  ['storage/'],
  ['namespace/'],
  ['cluster/'],
  ['xdr/'],
  ['udf/'],
  ['service/', 'options.ts', 'open.ts', 'db.ts', 'db-cluster.ts', 'db-cluster-values.ts', 'db-batch-wire.ts', 'shutdown.ts', 'index.ts', 'log.ts', 'metrics.ts', 'metrics-server.ts', 'status-page.ts', 'backup/'],
];

/** The layer number of a lib/ file, or undefined when LAYERS does not place it. */
function layerOf(file) {
  const name = path.relative(LIB, file).split(path.sep).join('/');
  let best;
  LAYERS.forEach((prefixes, layer) => {
    for (const prefix of prefixes) {
      if (name === prefix || (prefix.endsWith('/') && name.startsWith(prefix))) {
        if (best === undefined || prefix.length > best.length) best = { prefix, layer };
      }
    }
  });
  return best?.layer;
}

/** Every .ts file below `dir` (declaration files included: they can import too). */
function sourceFiles(dir) {
  const files = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) files.push(...sourceFiles(full));
    else if (entry.name.endsWith('.ts')) files.push(full);
  }
  return files.sort();
}

/** The lib/ file a relative specifier names, or undefined for a package or a file outside lib/. */
function resolveImport(fromFile, specifier) {
  if (!specifier.startsWith('.')) return undefined;
  const base = path.resolve(path.dirname(fromFile), specifier);
  for (const candidate of [base, `${base}.ts`, `${base}.d.ts`, path.join(base, 'index.ts')]) {
    if (candidate.startsWith(LIB + path.sep) && fs.existsSync(candidate) && fs.statSync(candidate).isFile()) return candidate;
  }
  return undefined;
}

/** file -> the lib/ files it imports (any kind of import). */
function importGraph(files) {
  const graph = new Map();
  for (const file of files) {
    const info = ts.preProcessFile(fs.readFileSync(file, 'utf8'), true, true);
    const targets = new Set();
    for (const imported of info.importedFiles) {
      const target = resolveImport(file, imported.fileName);
      if (target !== undefined) targets.add(target);
    }
    graph.set(file, [...targets].sort());
  }
  return graph;
}

/** Strongly connected components with more than one file, or a file importing itself (Tarjan). */
function cycles(graph) {
  let counter = 0;
  const index = new Map();
  const low = new Map();
  const stack = [];
  const onStack = new Set();
  const found = [];
  const visit = (file) => {
    index.set(file, counter);
    low.set(file, counter);
    counter += 1;
    stack.push(file);
    onStack.add(file);
    for (const next of graph.get(file) ?? []) {
      if (!index.has(next)) {
        visit(next);
        low.set(file, Math.min(low.get(file), low.get(next)));
      } else if (onStack.has(next)) {
        low.set(file, Math.min(low.get(file), index.get(next)));
      }
    }
    if (low.get(file) !== index.get(file)) return;
    const component = [];
    let member;
    do {
      member = stack.pop();
      onStack.delete(member);
      component.push(member);
    } while (member !== file);
    if (component.length > 1 || (graph.get(file) ?? []).includes(file)) found.push(component);
  };
  for (const file of graph.keys()) if (!index.has(file)) visit(file);
  return found;
}

/** One concrete loop through a component, as a readable chain a → b → … → a. */
function loopThrough(graph, component) {
  const members = new Set(component);
  const start = [...component].sort()[0];
  const previous = new Map([[start, undefined]]);
  const queue = [start];
  while (queue.length > 0) {
    const file = queue.shift();
    for (const next of graph.get(file) ?? []) {
      if (next === start) {
        const chain = [start];
        for (let at = file; at !== start; at = previous.get(at)) chain.splice(1, 0, at);
        return [...chain, start];
      }
      if (members.has(next) && !previous.has(next)) {
        previous.set(next, file);
        queue.push(next);
      }
    }
  }
  return component;
}

function main() {
  const relative = (file) => path.relative(ROOT, file);
  const files = sourceFiles(LIB);
  const problems = [];
  for (const file of files) {
    const lines = fs.readFileSync(file, 'utf8').split('\n').length - 1;
    const limit = OVER_LIMIT[relative(file)] ?? MAX_LINES;
    if (lines > limit) {
      problems.push(`${relative(file)}: ${lines} lines, over ${limit}${limit === MAX_LINES ? '' : ' (its length when the limit came; split it, do not grow it)'}`);
    }
  }
  for (const name of Object.keys(OVER_LIMIT)) {
    if (!fs.existsSync(path.join(ROOT, name))) problems.push(`${name}: listed in OVER_LIMIT but gone; take it off the list`);
  }
  const graph = importGraph(files);
  for (const [file, targets] of graph) {
    const layer = layerOf(file);
    if (layer === undefined) {
      problems.push(`${relative(file)}: in no layer; add it to LAYERS in scripts/check-architecture.js`);
      continue;
    }
    for (const target of targets) {
      const targetLayer = layerOf(target);
      if (targetLayer !== undefined && targetLayer > layer) {
        problems.push(`${relative(file)} imports ${relative(target)}, a higher layer (${LAYERS[targetLayer].join(' ')} above ${LAYERS[layer].join(' ')})`);
      }
    }
  }
  for (const component of cycles(graph)) {
    problems.push(`import cycle: ${loopThrough(graph, component).map(relative).join(' → ')}${component.length > 2 ? ` (${component.length} files in the cycle group)` : ''}`);
  }
  if (problems.length > 0) {
    process.stderr.write(`check-architecture: ${problems.length} problem(s)\n${problems.map((line) => `  ${line}\n`).join('')}`);
    process.exitCode = 1;
    return;
  }
  process.stdout.write(`check-architecture: ${files.length} files in lib/, none over ${MAX_LINES} lines but the ${Object.keys(OVER_LIMIT).length} listed, no import cycle, none against the layers\n`);
}

main();
