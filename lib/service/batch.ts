/**
 * Batch index requests (docs/protocol.md, "Batch"): one AS_MSG whose field 41 lists rows, each
 * a single-record read, write or delete of its own. Every row is executed as the single-record
 * command it describes (records.ts) and answered by an AS_MSG carrying the row's index in the
 * transaction-ttl slot and its own result code; the reply ends with a message flagged LAST.
 *
 * Row layout (the Aerospike server's batch.c): u32 index, 20-byte digest, u8 flags. Flag 01
 * repeats the previous row's namespace, set, header and ops. Otherwise info1 follows, then
 * info2 and info3 (flag 02), info4 (flag 10), a u16 generation (flag 04), a u32 record ttl
 * (flag 08); then u16 field count, u16 op count, the fields (namespace first) and the ops.
 */
import { ByteWriter } from './byte-writer';
import { SERVICE_BATCH_CONCURRENCY, SERVICE_BATCH_ROWS_MAX, SERVICE_REPLY_CHUNK_BYTES } from './constants';
import { RecordContext, RecordReply, executeRecord, filterOf, refuseUnsupportedFields, writeRecordMessage } from './records';
import { ResultCode, resultCodeOf } from './result-codes';
import { DIGEST_BYTES, FieldType, Info3, Message, ProtocolError, parseFieldsAndOps } from './wire';

const RowFlag = { REPEAT: 0x01, INFO: 0x02, GENERATION: 0x04, TTL: 0x08, INFO4: 0x10 } as const;

/** A batch row: the record message it describes, and its index in the client's batch. */
export interface BatchRow {
  index: number;
  message: Message;
}

/**
 * The rows of a batch field.
 * @throws ProtocolError for a field that is cut off or malformed.
 */
export function parseBatchRows(field: Buffer, parent: Message): BatchRow[] {
  if (field.length < 5) throw new ProtocolError('batch field shorter than its header');
  const count = field.readUInt32BE(0);
  if (count > SERVICE_BATCH_ROWS_MAX) throw new ProtocolError(`batch of ${count} rows; at most ${SERVICE_BATCH_ROWS_MAX}`);
  const rows: BatchRow[] = [];
  let at = 5;
  let previous: Message | undefined;
  for (let row = 0; row < count; row++) {
    if (field.length - at < 4 + DIGEST_BYTES + 1) throw new ProtocolError(`batch row ${row} of ${count} is cut off`);
    const index = field.readUInt32BE(at);
    const digest = field.subarray(at + 4, at + 4 + DIGEST_BYTES);
    const flags = field[at + 4 + DIGEST_BYTES]!;
    at += 4 + DIGEST_BYTES + 1;
    let message: Message;
    if ((flags & RowFlag.REPEAT) !== 0) {
      if (previous === undefined) throw new ProtocolError('the first batch row repeats a previous one');
      const fields = new Map(previous.fields);
      fields.delete(FieldType.KEY);
      fields.set(FieldType.DIGEST, digest);
      message = { ...previous, fields };
    } else {
      message = parseRow(field, at, flags, parent);
      message.fields.set(FieldType.DIGEST, digest);
      at = message.end;
      previous = message;
    }
    rows.push({ index, message });
  }
  return rows;
}

/** A full row: the header bytes its flags announce, then fields and ops as in an AS_MSG. */
function parseRow(field: Buffer, at: number, flags: number, parent: Message): Message {
  const headerBytes = 1 + ((flags & RowFlag.INFO) !== 0 ? 2 : 0) + ((flags & RowFlag.INFO4) !== 0 ? 1 : 0) + ((flags & RowFlag.GENERATION) !== 0 ? 2 : 0) + ((flags & RowFlag.TTL) !== 0 ? 4 : 0);
  if (field.length - at < headerBytes + 4) throw new ProtocolError('batch row header is cut off');
  const info1 = field[at++]!;
  let info2 = 0;
  let info3 = parent.info3 & (Info3.SC_READ_TYPE | Info3.SC_READ_RELAX);
  let info4 = 0;
  let generation = 0;
  let recordTtl = 0;
  if ((flags & RowFlag.INFO) !== 0) {
    info2 = field[at++]!;
    info3 = field[at++]!;
  }
  if ((flags & RowFlag.INFO4) !== 0) info4 = field[at++]!;
  if ((flags & RowFlag.GENERATION) !== 0) {
    generation = field.readUInt16BE(at);
    at += 2;
  }
  if ((flags & RowFlag.TTL) !== 0) {
    recordTtl = field.readUInt32BE(at);
    at += 4;
  }
  const body = parseFieldsAndOps(field, at + 4, field.length, field.readUInt16BE(at), field.readUInt16BE(at + 2));
  return {
    info1,
    info2,
    info3,
    info4,
    resultCode: 0,
    generation,
    recordTtl,
    transactionTtlMs: parent.transactionTtlMs,
    fields: body.fields,
    ops: body.ops,
    end: body.end,
  };
}

/**
 * Executes a batch request, writing its reply frames through `send` (called with the writer
 * once it holds SERVICE_REPLY_CHUNK_BYTES or the batch is done; `send` must empty it).
 * Rows run SERVICE_BATCH_CONCURRENCY at a time. Never rejects for a row's failure: that row is
 * answered with its result code.
 * @throws ProtocolError for a malformed batch field.
 */
export async function executeBatch(
  context: RecordContext,
  message: Message,
  writer: ByteWriter,
  send: (last: boolean) => Promise<void>,
  isOpen: () => boolean,
): Promise<void> {
  refuseUnsupportedFields(message.fields);
  const field = message.fields.get(FieldType.BATCH_INDEX);
  if (field === undefined) {
    throw message.fields.has(FieldType.BATCH_INDEX_WITH_SET)
      ? new ProtocolError('the old batch format (field 42) is not supported; Shoal speaks server 7.0, whose clients send field 41')
      : new ProtocolError('a batch request without a batch field');
  }
  const rows = parseBatchRows(field, message);
  // A row without a filter of its own takes the batch's (the server's rw_utils.c), compiled once for all.
  const filter = filterOf(message.fields);
  if (filter !== undefined) for (const row of rows) if (!row.message.fields.has(FieldType.FILTER)) row.message.filter = filter;
  for (let start = 0; start < rows.length && isOpen(); start += SERVICE_BATCH_CONCURRENCY) {
    const window = rows.slice(start, start + SERVICE_BATCH_CONCURRENCY);
    const replies = await Promise.all(window.map((row) => executeRow(context, row)));
    const nowSeconds = Math.floor(Date.now() / 1000);
    for (let i = 0; i < window.length; i++) {
      writeRecordMessage(writer, replies[i]!, nowSeconds, { transactionTtl: window[i]!.index });
      if (writer.length >= SERVICE_REPLY_CHUNK_BYTES) await send(false);
    }
  }
  writeRecordMessage(writer, { resultCode: ResultCode.OK, generation: 0, ttl: -1, bins: [] }, 0, { info3: Info3.LAST });
  await send(true);
}

async function executeRow(context: RecordContext, row: BatchRow): Promise<RecordReply> {
  try {
    return await executeRecord(context, row.message);
  } catch (error) {
    return { resultCode: resultCodeOf(error), generation: 0, ttl: -1, bins: [] };
  }
}
