/**
 * Set names and the 12-bit ids the index keeps instead of them. Ids are never reused within
 * a namespace's life, so an id in a surviving index entry always means the same set.
 */
import { SET_COUNT_MAX } from '../constants';
import { invalidArgument } from '../errors';
import { encodeSetName } from '../model/key';

export class SetTable {
  private readonly ids = new Map<string, number>();
  private readonly names: string[] = [''];

  /** The id of a set, or undefined if no record ever used it. '' (no set, also undefined or null) is id 0. */
  idOf(set: string | undefined | null): number | undefined {
    if (set === undefined || set === null || set === '') return 0;
    return this.ids.get(set);
  }

  /**
   * The id of a set, assigning one on first use.
   * @throws ShoalError INVALID_ARGUMENT when the namespace already has 4095 sets.
   */
  idFor(set: string | undefined | null): number {
    if (set === undefined || set === null || set === '') return 0;
    const id = this.ids.get(set);
    if (id !== undefined) return id;
    encodeSetName(set);
    if (this.names.length > SET_COUNT_MAX) throw invalidArgument(`a namespace holds at most ${SET_COUNT_MAX} sets`);
    this.names.push(set);
    this.ids.set(set, this.names.length - 1);
    return this.names.length - 1;
  }

  /** The name of a set id ('' for none or unknown). */
  nameOf(id: number): string {
    return this.names[id] ?? '';
  }

  /** Each named set with its element of `counts` (indexed by set id, as countBySet gives them). */
  objectsOf(counts: Float64Array): Map<string, number> {
    const objects = new Map<string, number>();
    for (let id = 1; id < this.names.length; id++) objects.set(this.names[id]!, counts[id] ?? 0);
    return objects;
  }

  /** Set names in id order, for persistence (index 0 is the empty set). */
  toJSON(): string[] {
    return this.names.slice();
  }

  static fromJSON(names: unknown): SetTable {
    const table = new SetTable();
    if (!Array.isArray(names)) return table;
    for (let id = 1; id < names.length; id++) {
      const name = String(names[id]);
      table.names.push(name);
      table.ids.set(name, id);
    }
    return table;
  }
}
