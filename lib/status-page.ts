/**
 * The status page served at `/` by the metrics listener: one self-contained HTML file (no
 * external scripts, styles or fonts, so it works on an isolated network) that fetches
 * `/status.json` every 2 s and redraws nodes, the 4,096 partitions coloured by master,
 * migrations, and each namespace's memory, device and objects.
 */
export const STATUS_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Shoal status</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 20px; color: #1d2330; background: #f6f7f9; }
  h1 { font-size: 20px; margin: 0 0 4px; }
  h2 { font-size: 15px; margin: 18px 0 6px; }
  .muted { color: #6b7280; }
  .row { display: flex; gap: 20px; flex-wrap: wrap; align-items: flex-start; margin-top: 10px; }
  .card { background: #fff; border: 1px solid #dde1e7; border-radius: 6px; padding: 12px 14px; }
  table { border-collapse: collapse; }
  th, td { text-align: left; padding: 3px 8px 3px 0; white-space: nowrap; }
  th { font-weight: 600; color: #4b5563; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  .swatch { display: inline-block; width: 11px; height: 11px; border-radius: 2px; margin-right: 6px; vertical-align: -1px; }
  .bar { width: 80px; height: 9px; background: #e5e7eb; border-radius: 4px; overflow: hidden; display: inline-block; vertical-align: middle; }
  .bar > div { height: 100%; background: #2563eb; }
  #state.bad { color: #b91c1c; }
  .side { flex: 1 1 0; min-width: 560px; }
  canvas { image-rendering: pixelated; border: 1px solid #dde1e7; }
</style>
</head>
<body>
<h1>Shoal <span id="node" class="muted"></span></h1>
<div id="state" class="muted">loading...</div>
<div class="row">
  <div class="card">
    <h2>Partitions by master <span id="partition-note" class="muted"></span></h2>
    <canvas id="grid" width="384" height="384" aria-label="4096 partitions coloured by master node"></canvas>
  </div>
  <div class="side">
    <div class="card">
      <h2>Nodes</h2>
      <table id="nodes"><thead><tr><th>node</th><th>masters</th><th>role</th><th>last heard</th><th>migrations left</th></tr></thead><tbody></tbody></table>
    </div>
    <div class="card" style="margin-top: 16px">
      <h2>Migrations</h2>
      <div id="migrations"></div>
    </div>
    <div class="card" style="margin-top: 16px">
      <h2>Namespaces</h2>
      <table id="namespaces"><thead><tr><th>namespace</th><th>objects</th><th>memory</th><th></th><th>device</th><th></th><th>evicted</th><th>expired</th><th>start</th></tr></thead><tbody></tbody></table>
    </div>
  </div>
</div>
<script>
const COLOURS = ['#2563eb', '#16a34a', '#f59e0b', '#db2777', '#7c3aed', '#0891b2', '#dc2626', '#65a30d', '#ea580c', '#4f46e5', '#0d9488', '#a21caf'];
const text = (value) => document.createTextNode(String(value));
function bytes(n) {
  if (typeof n !== 'number') return '-';
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + ' ' + units[i];
}
function cell(row, value, className) {
  const td = document.createElement('td');
  if (value instanceof Node) td.appendChild(value); else td.appendChild(text(value));
  if (className) td.className = className;
  row.appendChild(td);
}
function bar(used, total) {
  const outer = document.createElement('span');
  outer.className = 'bar';
  const inner = document.createElement('div');
  inner.style.width = (total > 0 ? Math.min(100, (100 * used) / total) : 0).toFixed(1) + '%';
  outer.appendChild(inner);
  return outer;
}
function draw(status) {
  document.getElementById('node').textContent = status.nodeId + (status.clusterKey ? ' - cluster key ' + status.clusterKey : ' - single node');
  const state = document.getElementById('state');
  state.className = 'muted';
  state.textContent = 'updated ' + new Date(status.nowMs).toLocaleTimeString() + (status.settled ? ' - settled' : ' - rebalancing');
  const colour = new Map(status.nodes.map((node, index) => [node.id, COLOURS[index % COLOURS.length]]));
  const grid = document.getElementById('grid').getContext('2d');
  grid.fillStyle = '#ffffff';
  grid.fillRect(0, 0, 384, 384);
  const masters = new Map();
  status.partitionMasters.forEach((id, partition) => {
    masters.set(id, (masters.get(id) || 0) + 1);
    grid.fillStyle = colour.get(id) || '#9ca3af';
    grid.fillRect((partition % 64) * 6, Math.floor(partition / 64) * 6, 5, 5);
  });
  document.getElementById('partition-note').textContent = '(' + status.partitionMasters.length + ', 64 per row)';
  const nodes = document.querySelector('#nodes tbody');
  nodes.replaceChildren();
  for (const node of status.nodes) {
    const row = document.createElement('tr');
    const name = document.createElement('span');
    const swatch = document.createElement('span');
    swatch.className = 'swatch';
    swatch.style.background = colour.get(node.id);
    name.append(swatch, text(node.id + (node.self ? ' (this node)' : '')));
    cell(row, name);
    cell(row, masters.get(node.id) || 0, 'num');
    cell(row, [node.principal ? 'principal' : '', node.quiesced ? 'quiesced' : '', node.member ? '' : 'joining'].filter(Boolean).join(', ') || 'member');
    cell(row, node.self ? '-' : node.heardAgoMs === null ? 'not heard' : (node.heardAgoMs / 1000).toFixed(1) + ' s ago');
    cell(row, node.migrationsRemaining === null ? '?' : node.migrationsRemaining, 'num');
    nodes.appendChild(row);
  }
  const total = status.nodes.reduce((sum, node) => sum + (node.migrationsRemaining || 0), 0);
  const migrations = document.getElementById('migrations');
  migrations.replaceChildren(text(total === 0 ? 'none in progress' : total + ' partitions left to migrate across the cluster (' + status.migrationsRemaining + ' on this node)'));
  const namespaces = document.querySelector('#namespaces tbody');
  namespaces.replaceChildren();
  for (const ns of status.namespaces) {
    const row = document.createElement('tr');
    cell(row, ns.name);
    cell(row, ns.objects.toLocaleString('en-US'), 'num');
    cell(row, bytes(ns.memoryUsedBytes) + (ns.memoryLimitBytes ? ' of ' + bytes(ns.memoryLimitBytes) : ''), 'num');
    cell(row, ns.memoryLimitBytes ? bar(ns.memoryUsedBytes, ns.memoryLimitBytes) : '');
    cell(row, ns.deviceTotalBytes ? bytes(ns.deviceUsedBytes) + ' of ' + bytes(ns.deviceTotalBytes) : '-', 'num');
    cell(row, ns.deviceTotalBytes ? bar(ns.deviceUsedBytes, ns.deviceTotalBytes) : '');
    cell(row, ns.evicted, 'num');
    cell(row, ns.expired, 'num');
    cell(row, ns.startMode);
    namespaces.appendChild(row);
  }
}
async function refresh() {
  try {
    const response = await fetch('status.json', { cache: 'no-store' });
    if (!response.ok) throw new Error('HTTP ' + response.status);
    draw(await response.json());
    // How many times the page has drawn (a headless check waits for it).
    document.body.dataset.draws = String(Number(document.body.dataset.draws || 0) + 1);
  } catch (error) {
    const state = document.getElementById('state');
    state.className = 'bad';
    state.textContent = 'cannot reach the node: ' + error.message;
  }
}
refresh();
setInterval(refresh, 2000);
</script>
</body>
</html>
`;
