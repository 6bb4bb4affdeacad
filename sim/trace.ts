/**
 * A running hash of everything a simulation did (events, messages, acknowledgements), to
 * check that a seed replays exactly: two runs of one seed must end with the same digest.
 * FNV-1a over two independent 32-bit lanes (64 bits of state), fed with numbers and strings.
 */
export class TraceHash {
  private a = 0x811c9dc5;
  private b = 0x01000193 ^ 0x5bd1e995;
  /** Items hashed so far. */
  count = 0;

  number(value: number): void {
    // Simulated times are fractional: hash the exact bits of the double.
    scratch[0] = value;
    for (let i = 0; i < 8; i++) this.byte(scratchBytes[i]);
    this.count++;
  }

  string(value: string): void {
    for (let i = 0; i < value.length; i++) {
      const code = value.charCodeAt(i);
      this.byte(code & 0xff);
      this.byte(code >>> 8);
    }
    this.byte(0);
    this.count++;
  }

  bytes(value: Uint8Array): void {
    for (let i = 0; i < value.length; i++) this.byte(value[i]);
    this.count++;
  }

  private byte(value: number): void {
    this.a = Math.imul(this.a ^ value, 0x01000193) >>> 0;
    this.b = Math.imul(this.b ^ value ^ (this.a >>> 24), 0x01000193) >>> 0;
  }

  /** The digest so far, as 16 hex digits. */
  digest(): string {
    return this.a.toString(16).padStart(8, '0') + this.b.toString(16).padStart(8, '0');
  }
}

const scratch = new Float64Array(1);
const scratchBytes = new Uint8Array(scratch.buffer);
