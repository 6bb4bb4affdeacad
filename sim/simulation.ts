/**
 * Deterministic simulation seams: a seeded discrete-event scheduler with one simulated host
 * per node (its own clock and timers, which can be stalled, jumped or crashed), and an
 * in-memory network with configurable loss, delay, duplication, reordering and one-way
 * partitions. N cluster nodes run in one process with the production code paths; the same
 * seed replays the same run, event for event.
 *
 * Ordering: after each scheduled event the run loop lets every promise chain that event
 * started settle (it waits on process.nextTick, which Node runs only once the microtask queue
 * is empty) before it runs the next event: the ordering a real node sees, where microtasks
 * drain after every callback. It never waits on the real event loop for that, which kept the
 * old loop (one setImmediate per event) at about 12 simulated seconds per wall second.
 *
 * Libraries called by cluster code (better-queue) use the global setTimeout/setImmediate.
 * While events run, the scheduler routes those globals to the simulated timers of the host
 * whose event is running, so they too are scheduled by the seed; the real globals are put
 * back whenever control returns to the real event loop.
 */
import { decodeBody, encodeBody, frameOf, FrameError } from '../lib/cluster/frame';
import { FRAME_HEADER_BYTES, MAX_HANDSHAKE_FRAME_BYTES } from '../lib/cluster/constants';
import type { FrameKeys } from '../lib/cluster/frame-auth';
import type { Connection, ConnectionHandlers, Listener, Network, NetworkOptions, WireMessage } from '../lib/cluster/network';
import { HandlerSlot, hostOf } from '../lib/cluster/network';
import type { Clock, Logger, TimerHandle, Timers } from '../lib/cluster/seams';
import { SeededRandom } from '../lib/cluster/seams';

const TASK = Symbol('simulation task');

interface Task {
  [TASK]: true;
  timeMs: number;
  sequence: number;
  host: SimHost | undefined;
  run: () => void;
  cancelled: boolean;
}

/** Min-heap of tasks ordered by (timeMs, sequence). */
class TaskHeap {
  private items: Task[] = [];
  get size(): number {
    return this.items.length;
  }
  push(task: Task): void {
    const items = this.items;
    items.push(task);
    let index = items.length - 1;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (!before(items[index], items[parent])) break;
      [items[index], items[parent]] = [items[parent], items[index]];
      index = parent;
    }
  }
  peek(): Task | undefined {
    return this.items[0];
  }
  pop(): Task | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (items.length > 0 && last !== undefined) {
      items[0] = last;
      let index = 0;
      for (;;) {
        const left = 2 * index + 1;
        const right = left + 1;
        let smallest = index;
        if (left < items.length && before(items[left], items[smallest])) smallest = left;
        if (right < items.length && before(items[right], items[smallest])) smallest = right;
        if (smallest === index) break;
        [items[index], items[smallest]] = [items[smallest], items[index]];
        index = smallest;
      }
    }
    return top;
  }
}

/** Events between two turns of the real event loop (none of them waits on it). */
const REAL_YIELD_EVERY_EVENTS = 4096;

/** Resolves once every queued microtask has run (Node runs nextTick callbacks only after the microtask queue is empty). */
function settleMicrotasks(): Promise<void> {
  return new Promise((resolve) => process.nextTick(resolve));
}

const realGlobals = {
  setTimeout: globalThis.setTimeout,
  clearTimeout: globalThis.clearTimeout,
  setInterval: globalThis.setInterval,
  clearInterval: globalThis.clearInterval,
  setImmediate: globalThis.setImmediate,
  clearImmediate: globalThis.clearImmediate,
};
let installedFor: SimScheduler | undefined;

function isTask(handle: unknown): handle is Task {
  return typeof handle === 'object' && handle !== null && (handle as { [TASK]?: boolean })[TASK] === true;
}

/**
 * Routes the global timer functions to simulated time on the host whose event is running
 * (or the scheduler itself between events). Only library code reaches them: cluster code
 * uses its Timers seam. Handles of real timers created before still clear correctly.
 */
function installGlobalTimers(scheduler: SimScheduler): void {
  installedFor = scheduler;
  const schedule = (callback: (...args: unknown[]) => void, delayMs: unknown, args: unknown[]): Task => {
    const delay = typeof delayMs === 'number' && delayMs > 0 ? delayMs : 0;
    return scheduler.schedule(scheduler.nowMs() + delay, scheduler.currentHost, () => callback(...args));
  };
  const cancel = (real: (handle: never) => void) => (handle: unknown) => {
    if (isTask(handle)) handle.cancelled = true;
    else real(handle as never);
  };
  const g = globalThis as unknown as Record<string, unknown>;
  g.setTimeout = (callback: (...args: unknown[]) => void, delayMs?: number, ...args: unknown[]) => schedule(callback, delayMs, args);
  g.setImmediate = (callback: (...args: unknown[]) => void, ...args: unknown[]) => schedule(callback, 0, args);
  g.setInterval = (callback: (...args: unknown[]) => void, intervalMs?: number, ...args: unknown[]) => {
    // Library intervals are not used by cluster code; model one as a self-rearming timeout.
    const handle = { [TASK]: true, cancelled: false } as unknown as Task;
    const period = typeof intervalMs === 'number' && intervalMs >= 1 ? intervalMs : 1;
    const arm = () => {
      const task = scheduler.schedule(scheduler.nowMs() + period, scheduler.currentHost, () => {
        if (handle.cancelled) return;
        arm();
        callback(...args);
      });
      void task;
    };
    arm();
    return handle;
  };
  g.clearTimeout = cancel(realGlobals.clearTimeout as (handle: never) => void);
  g.clearImmediate = cancel(realGlobals.clearImmediate as (handle: never) => void);
  g.clearInterval = cancel(realGlobals.clearInterval as (handle: never) => void);
}

function uninstallGlobalTimers(): void {
  if (installedFor === undefined) return;
  installedFor = undefined;
  Object.assign(globalThis, realGlobals);
}

function before(a: Task, b: Task): boolean {
  return a.timeMs < b.timeMs || (a.timeMs === b.timeMs && a.sequence < b.sequence);
}

/** Seeded discrete-event scheduler. Simulated time starts at `startMs`. */
export class SimScheduler implements Clock {
  readonly random: SeededRandom;
  private readonly heap = new TaskHeap();
  private sequence = 0;
  private currentMs: number;
  private readonly hosts = new Map<string, SimHost>();
  /** Events executed so far (for throughput figures). */
  eventsRun = 0;
  /** The host whose event is running (global timers set meanwhile belong to it). */
  currentHost: SimHost | undefined;
  /** Optional observer of every event run (time, host name, event number), for replay traces. */
  trace: ((timeMs: number, host: string, event: number) => void) | undefined;

  constructor(readonly seed: number, startMs = 1_700_000_000_000) {
    this.random = new SeededRandom(seed);
    this.currentMs = startMs;
  }

  nowMs(): number {
    return this.currentMs;
  }

  /** The simulated host named `name` (created on first use). */
  host(name: string): SimHost {
    let host = this.hosts.get(name);
    if (host === undefined) {
      host = new SimHost(name, this);
      this.hosts.set(name, host);
    }
    return host;
  }

  /**
   * A new process on the machine `name` (after a crash): a fresh host with the old one's wall
   * clock offset. The old host stays crashed, so nothing of the dead process ever runs again.
   */
  restartHost(name: string): SimHost {
    const old = this.hosts.get(name);
    const host = new SimHost(name, this);
    if (old !== undefined) {
      old.crashed = true;
      host.wallClockOffsetMs = old.wallClockOffsetMs;
    }
    this.hosts.set(name, host);
    return host;
  }

  /** Schedules `run` at absolute time `timeMs` on `host` (undefined: the scheduler itself). */
  schedule(timeMs: number, host: SimHost | undefined, run: () => void): Task {
    const task: Task = { [TASK]: true, timeMs: Math.max(timeMs, this.currentMs), sequence: this.sequence++, host, run, cancelled: false };
    // Work due now (0 ms timers, setImmediate, a message handed to its host) runs after the
    // current event, before any later one, in the order it was scheduled: a FIFO, cheaper than the heap.
    if (task.timeMs === this.currentMs) this.immediates.push(task);
    else this.heap.push(task);
    return task;
  }

  /** Tasks due at the current time, in scheduling order (run before anything in the heap). */
  private immediates: Task[] = [];
  private immediateHead = 0;

  private nextTask(untilMs: number): Task | undefined {
    if (this.immediateHead < this.immediates.length) {
      const task = this.immediates[this.immediateHead++];
      if (this.immediateHead === this.immediates.length) {
        this.immediates = [];
        this.immediateHead = 0;
      }
      return task;
    }
    const next = this.heap.peek();
    if (next === undefined || next.timeMs > untilMs) return undefined;
    return this.heap.pop();
  }

  /** Runs events until simulated time reaches `untilMs` (inclusive). */
  async runUntilTime(untilMs: number): Promise<void> {
    let sinceYield = 0;
    installGlobalTimers(this);
    try {
      for (;;) {
        const next = this.nextTask(untilMs);
        if (next === undefined) break;
        if (next.cancelled) continue;
        this.currentMs = next.timeMs;
        const host = next.host;
        if (host !== undefined) {
          if (host.crashed) continue;
          if (host.pausedUntilMs > this.currentMs) {
            // A stalled host runs nothing until it wakes; its overdue work then runs late, in order.
            next.timeMs = host.pausedUntilMs;
            next.sequence = this.sequence++;
            this.heap.push(next);
            continue;
          }
        }
        this.eventsRun++;
        this.currentHost = host;
        this.trace?.(next.timeMs, host?.name ?? '-', this.eventsRun);
        try {
          next.run();
        } catch (error) {
          host?.logger?.error('simulation: task threw', { error: String((error as Error)?.stack ?? error) });
          if (host?.logger === undefined) throw error;
        }
        // Let promise chains started by this event settle before the next event.
        await settleMicrotasks();
        this.currentHost = undefined;
        if (++sinceYield >= REAL_YIELD_EVERY_EVENTS) {
          // Give the real event loop a turn (test-runner timers, I/O); no simulated work runs meanwhile.
          sinceYield = 0;
          uninstallGlobalTimers();
          await new Promise<void>((resolve) => realGlobals.setImmediate(resolve));
          installGlobalTimers(this);
        }
      }
    } finally {
      this.currentHost = undefined;
      uninstallGlobalTimers();
    }
    this.currentMs = Math.max(this.currentMs, untilMs);
  }

  /** Runs events for `durationMs` of simulated time. */
  runFor(durationMs: number): Promise<void> {
    return this.runUntilTime(this.currentMs + durationMs);
  }

  /**
   * Runs until `predicate()` holds (checked every `stepMs`) or `maxMs` of simulated time pass.
   * Returns whether the predicate held.
   */
  async runUntil(predicate: () => boolean, maxMs: number, stepMs = 10): Promise<boolean> {
    const deadline = this.currentMs + maxMs;
    while (!predicate()) {
      if (this.currentMs >= deadline) return false;
      await this.runUntilTime(Math.min(deadline, this.currentMs + stepMs));
    }
    return true;
  }
}

/**
 * One simulated machine/process: a Clock and Timers whose callbacks run under the scheduler.
 * `stall(ms)` models an event-loop stall (GC, busy loop): nothing of this host runs until it
 * ends, then overdue timers and messages run late. `jumpClock(ms)` moves only this host's clock.
 */
export class SimHost implements Clock, Timers {
  pausedUntilMs = 0;
  crashed = false;
  clockOffsetMs = 0;
  /** Offset of this machine's wall clock (record timestamps) from simulated time. */
  wallClockOffsetMs = 0;
  /**
   * The machine's wall clock, as the store reads it for record timestamps (Date.now in the Db).
   * Cluster code uses the monotonic clock (`nowMs`), which a wall-clock step does not move.
   */
  readonly wallClock: Clock = { nowMs: () => this.scheduler.nowMs() + this.clockOffsetMs + this.wallClockOffsetMs };
  logger: Logger | undefined;
  private intervals = new Map<object, Task>();

  constructor(readonly name: string, private readonly scheduler: SimScheduler) {}

  nowMs(): number {
    return this.scheduler.nowMs() + this.clockOffsetMs;
  }

  setTimeout(callback: () => void, delayMs: number): TimerHandle {
    return this.scheduler.schedule(this.scheduler.nowMs() + Math.max(0, delayMs), this, callback);
  }

  clearTimeout(handle: TimerHandle): void {
    if (handle !== undefined && handle !== null) (handle as Task).cancelled = true;
  }

  /** After the work already due on this host (the simulator's setImmediate). */
  setImmediate(callback: () => void): void {
    this.post(0, callback);
  }

  setInterval(callback: () => void, intervalMs: number): TimerHandle {
    const key = {};
    const period = Math.max(1, intervalMs);
    const arm = (atMs: number) => {
      const task = this.scheduler.schedule(atMs, this, () => {
        // Like Node, the next run is scheduled relative to when this one actually ran.
        arm(this.scheduler.nowMs() + period);
        callback();
      });
      this.intervals.set(key, task);
    };
    arm(this.scheduler.nowMs() + period);
    return key;
  }

  clearInterval(handle: TimerHandle): void {
    const task = this.intervals.get(handle as object);
    if (task !== undefined) task.cancelled = true;
    this.intervals.delete(handle as object);
  }

  /** Stalls this host's event loop for `durationMs` of simulated time, starting now. */
  stall(durationMs: number): void {
    this.pausedUntilMs = Math.max(this.pausedUntilMs, this.scheduler.nowMs() + durationMs);
  }

  /** Jumps this host's clock by `deltaMs` (may be negative); timers are unaffected. */
  jumpClock(deltaMs: number): void {
    this.clockOffsetMs += deltaMs;
  }

  /** Steps this machine's wall clock by `deltaMs` (NTP, an operator): record timestamps only. */
  jumpWallClock(deltaMs: number): void {
    this.wallClockOffsetMs += deltaMs;
  }

  /**
   * Runs `callback` on this host now, from inside a scheduler event (a message arriving): at
   * once if the host is running, when it wakes if it is stalled, never if it crashed. Saves the
   * second event per message that post(0) would cost.
   */
  runNowOrWhenAwake(callback: () => void): void {
    if (this.crashed) return;
    if (this.pausedUntilMs > this.scheduler.nowMs()) {
      this.post(0, callback);
      return;
    }
    const previous = this.scheduler.currentHost;
    this.scheduler.currentHost = this;
    try {
      callback();
    } finally {
      this.scheduler.currentHost = previous;
    }
  }

  /** Runs `callback` on this host after `delayMs` (used by the simulated network). */
  post(delayMs: number, callback: () => void): void {
    this.scheduler.schedule(this.scheduler.nowMs() + delayMs, this, callback);
  }
}

/** Fault settings of the simulated network; all default to a perfect network with 1 ms latency. */
export interface SimNetworkOptions {
  minDelayMs?: number;
  maxDelayMs?: number;
  /** Probability that a message is dropped. */
  lossRate?: number;
  /** Probability that a message is delivered twice. */
  duplicateRate?: number;
  /** Probability that a message ignores FIFO order on its connection. */
  reorderRate?: number;
}

/** What waits on a connection whose direction is stalled: a frame, or the connection's close (TCP's FIN). */
type HeldItem = { frame: Buffer } | { close: true };

export class SimEndpoint implements Connection {
  closed = false;
  peer: SimEndpoint | undefined;
  readonly remoteHost: string;
  /** The simulated network has no TLS. */
  readonly tlsBinding: Buffer | undefined = undefined;
  /** The handlers, and the frames (and a close) received before they were set. */
  private readonly slot = new HandlerSlot();
  private lastDeliveryMs = 0;
  private maxFrameBytes = MAX_HANDSHAKE_FRAME_BYTES;
  /**
   * When the connection this (client) endpoint opened is set up at the listener. Like TCP,
   * nothing sent before then can arrive before it: bytes written during the handshake wait
   * in the socket buffer.
   */
  establishedAtMs = 0;
  /** Frames (and a close) sent on this endpoint while its direction is stalled, waiting for TCP's next retransmission (SimNetwork.stall). */
  held: HeldItem[] = [];
  /** When the first held item was sent: retransmissions back off from there. */
  heldSinceMs = 0;
  /** A release of the held items is scheduled. */
  releasing = false;

  constructor(
    readonly network: SimNetwork,
    readonly host: SimHost,
    readonly localAddress: string,
    readonly remoteAddress: string,
  ) {
    this.remoteHost = hostOf(remoteAddress);
    network.register(this);
  }

  setHandlers(handlers: ConnectionHandlers): void {
    this.slot.install(
      handlers,
      (body) => this.deliver(body),
      () => this.closed,
      (reason) => handlers.onClose(reason),
    );
  }

  send(message: WireMessage): boolean {
    if (this.closed) return false;
    return this.sendBody(encodeBody(message));
  }

  sendBody(body: Buffer): boolean {
    if (this.closed) return false;
    this.network.transmit(this, frameOf(body));
    return true;
  }

  setMaxFrameBytes(bytes: number): void {
    this.maxFrameBytes = bytes;
  }

  /** Frames are not tagged here: the network only reorders or duplicates what TCP would not, and models no attacker (tags are tested on real TCP). */
  authenticateFrames(_keys: FrameKeys): void {}

  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    if (this.peer !== undefined) this.network.transmitClose(this);
    this.notifyClose(reason);
  }

  /** Delivery time for a message on this connection: FIFO unless reordered. */
  nextDeliveryMs(nowMs: number, delayMs: number, reorder: boolean): number {
    const at = reorder ? Math.max(nowMs + delayMs, this.establishedAtMs) : Math.max(nowMs + delayMs, this.lastDeliveryMs, this.establishedAtMs);
    if (!reorder) this.lastDeliveryMs = at;
    return at;
  }

  /** Later messages on this connection arrive no earlier than `atMs` (held frames are released then). */
  deliverNoEarlierThan(atMs: number): void {
    this.lastDeliveryMs = Math.max(this.lastDeliveryMs, atMs);
  }

  receive(frame: Buffer): void {
    if (this.closed) return;
    const bodyBytes = frame.length - FRAME_HEADER_BYTES;
    if (bodyBytes > this.maxFrameBytes) {
      this.violation(`frame length ${bodyBytes} exceeds the ${this.maxFrameBytes}-byte limit of this connection at this stage`);
      return;
    }
    const body = frame.subarray(FRAME_HEADER_BYTES);
    if (this.slot.handlers === undefined) this.slot.hold(body);
    else this.deliver(body);
  }

  remoteClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.notifyClose('closed by peer');
  }

  private violation(reason: string): void {
    this.host.logger?.warn(`cluster: closing connection with ${this.remoteAddress}: ${reason}`);
    this.close('protocol violation');
  }

  private notifyClose(reason: string): void {
    if (this.slot.handlers === undefined) {
      this.slot.holdClose(reason);
      return;
    }
    this.slot.handlers.onClose(reason);
  }

  private deliver(frameBody: Buffer): void {
    let message: WireMessage;
    try {
      message = decodeBody(frameBody);
    } catch (error) {
      if (!(error instanceof FrameError)) throw error;
      this.violation(error.message);
      return;
    }
    try {
      this.slot.handlers!.onMessage(message);
    } catch (error) {
      this.host.logger?.error(`cluster: closing connection with ${this.remoteAddress}: message handler threw`, {
        type: message.type,
        error: String((error as Error)?.stack ?? error),
      });
      this.close('message handler failed');
    }
  }
}

/** TCP's first retransmission timeout (ms); it doubles with every retry. */
const TCP_INITIAL_RETRANSMIT_MS = 200;
/** TCP's largest retransmission timeout (ms). */
const TCP_MAX_RETRANSMIT_MS = 60_000;
/** TCP's initial SYN retransmission timeout (ms). */
const TCP_INITIAL_SYN_RETRANSMIT_MS = 1_000;
/** SYN retries before a connection attempt fails. */
const TCP_SYN_RETRIES = 6;

/**
 * When TCP next retransmits data first sent at `sinceMs`, at or after `nowMs`: retries
 * TCP_INITIAL_RETRANSMIT_MS after the first send, then each time the timeout doubled (capped
 * at TCP_MAX_RETRANSMIT_MS). A stalled direction that heals at `nowMs` resumes then.
 */
export function nextRetransmitMs(sinceMs: number, nowMs: number): number {
  let at = sinceMs;
  let timeoutMs = TCP_INITIAL_RETRANSMIT_MS;
  while (at < nowMs) {
    at += timeoutMs;
    timeoutMs = Math.min(TCP_MAX_RETRANSMIT_MS, timeoutMs * 2);
  }
  return at;
}

/** In-memory network shared by all simulated hosts. Addresses are arbitrary "name:port" strings. */
export class SimNetwork {
  private readonly listeners = new Map<string, { host: SimHost; onConnection: (c: Connection) => void; options: NetworkOptions }>();
  /** Blocked directions, as "from|to" address pairs. */
  private readonly blocked = new Set<string>();
  /** Stalled directions (TCP-faithful one-way faults), as "from|to" address pairs. */
  private readonly stalled = new Set<string>();
  /** Endpoints holding frames for a stalled direction. */
  private readonly holding = new Set<SimEndpoint>();
  private readonly hostAddresses = new Map<SimHost, Set<string>>();
  /** Open endpoints per host, so a crash can close them the way the OS does for a dead process. */
  private readonly endpoints = new Map<SimHost, Set<SimEndpoint>>();
  options: Required<SimNetworkOptions>;
  /** Optional observer of every message sent (before faults apply), for replay traces. */
  onTransmit: ((from: string, to: string, frame: Buffer) => void) | undefined;
  messagesSent = 0;
  messagesDropped = 0;
  /** Frames that waited on a stalled direction. */
  messagesHeld = 0;

  constructor(private readonly scheduler: SimScheduler, options: SimNetworkOptions = {}) {
    this.options = { minDelayMs: 1, maxDelayMs: 1, lossRate: 0, duplicateRate: 0, reorderRate: 0, ...options };
  }

  /** The Network seen by one host. */
  forHost(host: SimHost): Network {
    const noCertificates = (options: NetworkOptions | undefined) => {
      if (options?.tls !== undefined) throw new Error('simulation: the simulated network has no TLS (use a secret: its handshake is modelled)');
    };
    return {
      listen: (address, onConnection, options = {}) => {
        noCertificates(options);
        return this.listen(host, address, onConnection, options);
      },
      connect: (address, options = {}) => {
        noCertificates(options);
        return this.connect(host, address, options);
      },
    };
  }

  /** Blocks traffic from `from` to `to` (one way). Existing messages in flight are dropped on arrival. */
  block(from: string, to: string): void {
    this.blocked.add(`${from}|${to}`);
  }

  unblock(from: string, to: string): void {
    this.blocked.delete(`${from}|${to}`);
  }

  /** Blocks both directions between every address of `a` and every address of `b`. */
  partition(a: string[], b: string[]): void {
    for (const x of a) for (const y of b) {
      this.block(x, y);
      this.block(y, x);
    }
  }

  /**
   * A one-way fault as TCP sees it (packets from `from` to `to` lost, with TCP's retransmissions):
   * nothing is dropped, frames sent from `from` to `to` wait on their connection, in order, and
   * go out when TCP's retransmission timer next fires after the stall ends (it backs off from
   * 200 ms, doubling: nextRetransmitMs), so a connection that stalled for seconds stays silent
   * for seconds after the heal unless it is replaced. New connections between the two wait
   * for a SYN retry (1 s, doubling). Simplification: frames the other way on those connections
   * are delivered (their acknowledgements would be lost; the peer's own acknowledgement
   * messages, which go `from` -> `to`, are what stall). Unlike `block`, which drops in-flight
   * messages and refuses connections, like loss above TCP.
   */
  stall(from: string, to: string): void {
    this.stalled.add(`${from}|${to}`);
  }

  /** Ends a stall (traffic resumes at each connection's next retransmission). */
  unstall(from: string, to: string): void {
    this.stalled.delete(`${from}|${to}`);
    this.releaseHeld();
  }

  /** Removes every block and stall. */
  heal(): void {
    this.blocked.clear();
    this.stalled.clear();
    this.releaseHeld();
  }

  private isStalled(from: string, to: string): boolean {
    return this.stalled.size > 0 && this.stalled.has(`${from}|${to}`);
  }

  /** Holds `item` on `from` (its direction is stalled, or earlier items still wait). */
  private hold(from: SimEndpoint, item: HeldItem): void {
    if (from.held.length === 0) from.heldSinceMs = this.scheduler.nowMs();
    from.held.push(item);
    this.holding.add(from);
    this.messagesHeld++;
  }

  /** Schedules, for each endpoint holding frames of a direction no longer stalled, their release at its next retransmission. */
  private releaseHeld(): void {
    const now = this.scheduler.nowMs();
    for (const endpoint of this.holding) {
      if (endpoint.releasing || this.isStalled(endpoint.localAddress, endpoint.remoteAddress)) continue;
      const at = nextRetransmitMs(endpoint.heldSinceMs, now);
      endpoint.releasing = true;
      endpoint.deliverNoEarlierThan(at);
      this.scheduler.schedule(at, undefined, () => this.release(endpoint));
    }
  }

  private release(endpoint: SimEndpoint): void {
    endpoint.releasing = false;
    if (this.isStalled(endpoint.localAddress, endpoint.remoteAddress)) return; // stalled again: released at a later heal
    const items = endpoint.held;
    endpoint.held = [];
    this.holding.delete(endpoint);
    if (endpoint.host.crashed) return; // the sender's kernel state died with it
    for (const item of items) {
      if ('frame' in item) this.arrive(endpoint, item.frame);
      else this.arriveClose(endpoint);
    }
  }

  register(endpoint: SimEndpoint): void {
    let set = this.endpoints.get(endpoint.host);
    if (set === undefined) this.endpoints.set(endpoint.host, (set = new Set()));
    set.add(endpoint);
  }

  /**
   * The process on `host` died (its machine stays up): the kernel closes its sockets, so each
   * peer gets a close after the usual delay (lost if the path is blocked; the peer's next
   * message then draws a reset), and its listen addresses refuse connections until a new
   * process listens there.
   */
  crashHost(host: SimHost): void {
    host.crashed = true;
    for (const [address, listener] of this.listeners) if (listener.host === host) this.listeners.delete(address);
    this.hostAddresses.delete(host);
    for (const endpoint of this.endpoints.get(host) ?? []) {
      if (endpoint.closed) continue;
      endpoint.closed = true;
      if (endpoint.peer !== undefined) this.transmitClose(endpoint);
    }
    this.endpoints.delete(host);
  }

  delayMs(): number {
    const { minDelayMs, maxDelayMs } = this.options;
    return minDelayMs + this.scheduler.random.nextFloat() * (maxDelayMs - minDelayMs);
  }

  private isBlocked(from: string, to: string): boolean {
    return this.blocked.size > 0 && this.blocked.has(`${from}|${to}`);
  }

  private async listen(host: SimHost, address: string, onConnection: (c: Connection) => void, options: NetworkOptions): Promise<Listener> {
    const existing = this.listeners.get(address);
    if (existing !== undefined && !existing.host.crashed) throw new Error(`simulation: address ${address} in use`);
    this.listeners.set(address, { host, onConnection, options });
    let addresses = this.hostAddresses.get(host);
    if (addresses === undefined) this.hostAddresses.set(host, (addresses = new Set()));
    addresses.add(address);
    return {
      address,
      close: async () => {
        if (this.listeners.get(address)?.host === host) this.listeners.delete(address);
      },
    };
  }

  private connect(host: SimHost, address: string, options: NetworkOptions): Connection {
    const localAddress = [...(this.hostAddresses.get(host) ?? [])][0] ?? `${host.name}:client`;
    const client = new SimEndpoint(this, host, localAddress, address);
    const delay = this.delayMs();
    client.establishedAtMs = this.scheduler.nowMs() + delay;
    this.scheduler.schedule(client.establishedAtMs, undefined, () => this.establish(host, client, localAddress, address, 0, options));
    return client;
  }

  /** The SYN of `client` reaches `address` (or, in a stall, is retried as TCP does). */
  private establish(host: SimHost, client: SimEndpoint, localAddress: string, address: string, synRetries: number, options: NetworkOptions): void {
    if (client.closed) return;
    if (this.isStalled(localAddress, address) || this.isStalled(address, localAddress)) {
      if (synRetries >= TCP_SYN_RETRIES) {
        host.post(0, () => client.close('connection timed out'));
        return;
      }
      const at = this.scheduler.nowMs() + TCP_INITIAL_SYN_RETRANSMIT_MS * 2 ** synRetries;
      client.establishedAtMs = at;
      this.scheduler.schedule(at, undefined, () => this.establish(host, client, localAddress, address, synRetries + 1, options));
      return;
    }
    const listener = this.listeners.get(address);
    if (listener === undefined || listener.host.crashed || this.isBlocked(localAddress, address) || this.isBlocked(address, localAddress)) {
      host.post(this.delayMs(), () => client.close('connection refused'));
      return;
    }
    const server = new SimEndpoint(this, listener.host, address, localAddress);
    server.peer = client;
    client.peer = server;
    listener.host.post(0, () => listener.onConnection(server));
  }

  /** A reset from a dead process's machine reaches `endpoint` (unless that direction is blocked): it closes. */
  private reset(endpoint: SimEndpoint): void {
    this.scheduler.schedule(this.scheduler.nowMs() + this.delayMs(), undefined, () => {
      if (endpoint.closed || this.isBlocked(endpoint.remoteAddress, endpoint.localAddress) || this.isStalled(endpoint.remoteAddress, endpoint.localAddress)) return;
      endpoint.host.runNowOrWhenAwake(() => endpoint.remoteClosed());
    });
  }

  /** A close reaches the peer after the messages sent before it, like a TCP FIN. */
  transmitClose(from: SimEndpoint): void {
    const at = from.nextDeliveryMs(this.scheduler.nowMs(), this.delayMs(), false);
    this.scheduler.schedule(at, undefined, () => {
      if (this.isStalled(from.localAddress, from.remoteAddress) || from.held.length > 0) this.hold(from, { close: true });
      else this.arriveClose(from);
    });
  }

  private arriveClose(from: SimEndpoint): void {
    const peer = from.peer;
    if (peer === undefined || this.isBlocked(from.localAddress, from.remoteAddress)) return;
    peer.host.runNowOrWhenAwake(() => peer.remoteClosed());
  }

  /** Called by an endpoint's send(): applies loss, delay, duplication and partitions. */
  transmit(from: SimEndpoint, frame: Buffer): void {
    this.messagesSent++;
    this.onTransmit?.(from.localAddress, from.remoteAddress, frame);
    const random = this.scheduler.random;
    const { lossRate, duplicateRate, reorderRate } = this.options;
    if (lossRate > 0 && random.nextFloat() < lossRate) {
      this.messagesDropped++;
      return;
    }
    const copies = duplicateRate > 0 && random.nextFloat() < duplicateRate ? 2 : 1;
    for (let copy = 0; copy < copies; copy++) {
      const reorder = reorderRate > 0 && random.nextFloat() < reorderRate;
      const at = from.nextDeliveryMs(this.scheduler.nowMs(), this.delayMs(), reorder);
      // The peer endpoint may not exist yet (connection still being established): resolve at delivery.
      this.scheduler.schedule(at, undefined, () => {
        if (this.isStalled(from.localAddress, from.remoteAddress) || from.held.length > 0) this.hold(from, { frame });
        else this.arrive(from, frame);
      });
    }
  }

  /** A frame sent on `from` reaches the other end (unless blocked, or the socket there is gone). */
  private arrive(from: SimEndpoint, frame: Buffer): void {
    const peer = from.peer;
    if (peer === undefined && !from.closed && from.establishedAtMs > this.scheduler.nowMs()) {
      // Its SYN is being retried (a stall): like TCP, the bytes wait in the socket buffer.
      this.scheduler.schedule(from.establishedAtMs, undefined, () => this.arrive(from, frame));
      return;
    }
    if (peer === undefined || this.isBlocked(from.localAddress, from.remoteAddress)) {
      this.messagesDropped++;
      return;
    }
    if (peer.host.crashed || peer.closed) {
      // The socket at the other end is gone (closed, or its process died; the machine is
      // up): like TCP, data arriving there draws a reset, so the sender learns the
      // connection is dead and reconnects even if the close itself was lost in a partition.
      this.messagesDropped++;
      this.reset(from);
      return;
    }
    peer.host.runNowOrWhenAwake(() => peer.receive(frame));
  }
}
