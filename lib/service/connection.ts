/**
 * One client connection of the service listener: it cuts the byte stream into proto frames,
 * hands them to the service one at a time (a reply is written before the next frame is
 * served, so pipelined requests are answered in order), and bounds what it holds:
 *
 * - a frame's declared size must be at most SERVICE_FRAME_BYTES_MAX, and its bytes must all
 *   arrive within SERVICE_FRAME_TIMEOUT_MS;
 * - a frame above SERVICE_SMALL_FRAME_BYTES first reserves its size from the service-wide
 *   SERVICE_BUFFERED_BYTES_MAX budget; while the budget is spent the connection stops reading;
 * - at most SERVICE_PIPELINED_FRAMES_MAX complete frames wait behind the one being served, and
 *   nothing more is read while the client does not read its replies.
 *
 * Anything that is not Aerospike's framing closes the connection (ProtocolError).
 */
import type { Socket } from 'node:net';
import { ByteWriter } from './byte-writer';
import { SERVICE_FRAME_BYTES_MAX, SERVICE_FRAME_TIMEOUT_MS, SERVICE_PIPELINED_FRAMES_MAX, SERVICE_SMALL_FRAME_BYTES } from './constants';
import { FrameType, PROTO_HEADER_BYTES, PROTO_VERSION, ProtocolError, readProtoHeader } from './wire';

/** The service-wide byte budget of frames being assembled. */
export class ByteBudget {
  private used = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly maxBytes: number) {}

  get usedBytes(): number {
    return this.used;
  }

  /** Takes `bytes` if they are free; otherwise queues `wake` for when some are released. */
  reserve(bytes: number, wake: () => void): boolean {
    if (this.used + bytes <= this.maxBytes) {
      this.used += bytes;
      return true;
    }
    this.waiting.push(wake);
    return false;
  }

  release(bytes: number): void {
    if (bytes === 0) return;
    this.used -= bytes;
    for (const wake of this.waiting.splice(0)) wake();
  }
}

/** What a connection asks of the service. */
export interface FrameHandler {
  /** Serves one frame; the connection waits for the returned promise before the next. */
  handleFrame(connection: Connection, type: number, body: Buffer): void | Promise<void>;
  /** The connection closed (for any reason). */
  connectionClosed(connection: Connection, reason: string | undefined): void;
}

const VALID_TYPES = new Set<number>([FrameType.INFO, FrameType.ADMIN, FrameType.MESSAGE, FrameType.COMPRESSED]);

export class Connection {
  /** The reply being built (reused for every reply of this connection). */
  readonly writer = new ByteWriter();
  /** Set by the service once the client has logged in (always true without security). */
  authenticated: boolean;
  private closed = false;
  private readonly header = Buffer.alloc(PROTO_HEADER_BYTES);
  private headerFilled = 0;
  /** The frame being assembled: its type, body, bytes filled, reserved budget and start time. */
  private frame: { type: number; body: Buffer; filled: number; reserved: number; startedMs: number } | undefined;
  private readonly queue: { type: number; body: Buffer; reserved: number }[] = [];
  private serving = false;
  private paused = false;
  /** Bytes of a chunk not yet consumed because the connection waits for budget. */
  private held: Buffer | undefined;

  constructor(
    readonly socket: Socket,
    private readonly handler: FrameHandler,
    private readonly budget: ByteBudget,
    authenticated: boolean,
  ) {
    this.authenticated = authenticated;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => this.close(undefined));
    socket.on('close', () => this.close(undefined));
    socket.on('drain', () => this.resumeIfReady());
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  /** Whether an unfinished frame has been arriving for longer than the timeout (checked by the service). */
  frameTimedOut(nowMs: number): boolean {
    return this.frame !== undefined && nowMs - this.frame.startedMs > SERVICE_FRAME_TIMEOUT_MS;
  }

  /**
   * Writes the writer's bytes to the socket and empties it. Returns undefined when the socket
   * can take more at once (the common case, so a reply costs no promise), else a promise of when it can.
   */
  flush(): Promise<void> | undefined {
    if (this.closed) {
      this.writer.reset();
      return undefined;
    }
    const ready = this.socket.write(this.writer.copyFrom(0));
    this.writer.reset();
    if (ready) return undefined;
    // The client is not reading its replies: read no more requests until it does.
    this.pauseReading();
    return new Promise((resolve) => {
      const done = () => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        resolve();
      };
      this.socket.on('drain', done);
      this.socket.on('close', done);
    });
  }

  /** Closes the connection; `reason` is logged by the service when given. Idempotent. */
  close(reason: string | undefined): void {
    if (this.closed) return;
    this.closed = true;
    if (this.frame !== undefined) this.budget.release(this.frame.reserved);
    for (const queued of this.queue.splice(0)) this.budget.release(queued.reserved);
    this.frame = undefined;
    this.held = undefined;
    this.socket.destroy();
    this.handler.connectionClosed(this, reason);
  }

  private onData(chunk: Buffer): void {
    try {
      this.consume(chunk);
    } catch (error) {
      if (error instanceof ProtocolError) this.close(error.message);
      else this.close(`internal error reading a frame: ${(error as Error).message}`);
    }
  }

  /** Cuts `chunk` into frames; keeps the rest when waiting for budget. */
  private consume(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length && !this.closed) {
      if (this.frame === undefined) {
        // The common case: a whole small frame in the chunk, served from the chunk itself.
        if (this.headerFilled === 0 && chunk.length - at >= PROTO_HEADER_BYTES) {
          const { type, size } = this.checkHeader(chunk, at);
          if (size <= SERVICE_SMALL_FRAME_BYTES && chunk.length - at - PROTO_HEADER_BYTES >= size) {
            this.enqueue(type, chunk.subarray(at + PROTO_HEADER_BYTES, at + PROTO_HEADER_BYTES + size), 0);
            at += PROTO_HEADER_BYTES + size;
            continue;
          }
        }
        const taken = Math.min(PROTO_HEADER_BYTES - this.headerFilled, chunk.length - at);
        chunk.copy(this.header, this.headerFilled, at, at + taken);
        this.headerFilled += taken;
        at += taken;
        if (this.headerFilled < PROTO_HEADER_BYTES) return;
        const { type, size } = this.checkHeader(this.header, 0);
        let reserved = 0;
        if (size > SERVICE_SMALL_FRAME_BYTES) {
          if (!this.budget.reserve(size, () => this.retryHeld())) {
            // Wait for budget with the header kept and the rest of the chunk held.
            this.headerFilled = 0;
            this.held = Buffer.concat([this.header, chunk.subarray(at)]);
            this.pauseReading();
            return;
          }
          reserved = size;
        }
        this.headerFilled = 0;
        this.frame = { type, body: Buffer.allocUnsafe(size), filled: 0, reserved, startedMs: Date.now() };
      }
      const frame = this.frame;
      const taken = Math.min(frame.body.length - frame.filled, chunk.length - at);
      chunk.copy(frame.body, frame.filled, at, at + taken);
      frame.filled += taken;
      at += taken;
      if (frame.filled === frame.body.length) {
        this.frame = undefined;
        this.enqueue(frame.type, frame.body, frame.reserved);
      }
    }
  }

  private checkHeader(source: Buffer, at: number): { type: number; size: number } {
    const { version, type, size } = readProtoHeader(source, at);
    if (version !== PROTO_VERSION) throw new ProtocolError(`proto version ${version}, not ${PROTO_VERSION}`);
    if (!VALID_TYPES.has(type)) throw new ProtocolError(`unknown proto type ${type}`);
    if (size > SERVICE_FRAME_BYTES_MAX) throw new ProtocolError(`a frame of ${size} bytes; the limit is ${SERVICE_FRAME_BYTES_MAX}`);
    return { type, size };
  }

  private retryHeld(): void {
    const held = this.held;
    this.held = undefined;
    if (held === undefined || this.closed) return;
    this.onData(held);
    this.resumeIfReady();
  }

  private enqueue(type: number, body: Buffer, reserved: number): void {
    this.queue.push({ type, body, reserved });
    if (this.queue.length > SERVICE_PIPELINED_FRAMES_MAX) this.pauseReading();
    if (!this.serving) this.serveNext();
  }

  private serveNext(): void {
    while (!this.closed) {
      const next = this.queue.shift();
      if (next === undefined) break;
      let result: void | Promise<void>;
      try {
        result = this.handler.handleFrame(this, next.type, next.body);
      } catch (error) {
        this.budget.release(next.reserved);
        this.close(error instanceof ProtocolError ? error.message : `internal error: ${(error as Error).message}`);
        return;
      }
      if (result instanceof Promise) {
        this.serving = true;
        result.then(
          () => this.served(next.reserved),
          (error: unknown) => {
            this.served(next.reserved);
            this.close(error instanceof ProtocolError ? error.message : `internal error: ${(error as Error).message}`);
          },
        );
        return;
      }
      this.budget.release(next.reserved);
    }
    this.resumeIfReady();
  }

  private served(reserved: number): void {
    this.serving = false;
    this.budget.release(reserved);
    this.serveNext();
  }

  private pauseReading(): void {
    if (this.paused) return;
    this.paused = true;
    this.socket.pause();
  }

  private resumeIfReady(): void {
    if (!this.paused || this.closed || this.held !== undefined) return;
    if (this.queue.length > SERVICE_PIPELINED_FRAMES_MAX / 2 || this.socket.writableNeedDrain) return;
    this.paused = false;
    this.socket.resume();
  }
}
