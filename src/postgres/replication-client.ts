import type { EventEmitter } from 'node:events';
import type pg from 'pg';
import { WardenError } from '../errors.ts';
import { BLOCK_BYTES, BlockPool } from '../pipeline/block-pool.ts';
import { EventQueue } from '../util/event-queue.ts';
import { connect } from './connect.ts';
import { CopyDataTap } from './copy-data-tap.ts';
import type { ConnectionConfig } from './connection-config.ts';

/** What a replication command sends back, in order. CopyData payloads are copied (pg reuses its buffer). */
export type ReplicationEvent =
  | { kind: 'columns'; names: string[] }
  | { kind: 'row'; values: Array<string | null> }
  | { kind: 'command-complete' }
  | { kind: 'copy-data'; data: Buffer }
  | { kind: 'copy-done' }
  /** Pushed by the consumer itself (a timer), never by the server. */
  | { kind: 'tick' };

export interface SystemIdentity {
  systemId: string;
  timeline: number;
  xlogpos: string;
}

/** The slice of pg's Connection a streaming command uses. */
interface WireConnection {
  query(text: string): void;
  sendCopyFromChunk(chunk: Buffer): void;
  endCopyFrom(): void;
  stream: EventEmitter & { pause(): void; resume(): void };
  on(event: string, listener: (...args: unknown[]) => void): void;
  removeListener(event: string, listener: (...args: unknown[]) => void): void;
}

const QUEUE_HIGH_WATER = 4 * 1024 * 1024;
/**
 * The queue's high-water mark for `reuseCopyBuffers` streams (START_REPLICATION): the consumer
 * only copies each message into its segment, so a short queue suffices, and it keeps the ring small.
 */
const RING_QUEUE_HIGH_WATER = 1024 * 1024;
/**
 * Ring for `reuseCopyBuffers`: twice that high-water mark. At most the high-water mark plus what
 * one socket read holds is queued unread (the socket pauses there), so a region is overwritten
 * only after the consumer has taken more than a MiB of later events.
 */
const RING_BYTES = 2 * RING_QUEUE_HIGH_WATER;
const RING_MAX_MESSAGE = RING_BYTES / 8;

export interface StreamOptions {
  /** Sent as CopyData when the server asks for input (CopyInResponse), then CopyDone. */
  copyIn?: Buffer;
  /**
   * Copy the payload of CopyData messages starting with this type byte into BlockPool blocks
   * (the type byte in front, then BLOCK_BYTES - 1 bytes of payload, messages split across
   * blocks): BASE_BACKUP sends ~32 KiB 'd' messages. They are taken off the socket before pg's
   * parser (a CopyDataTap), so each byte is copied once, from the socket's chunk into a
   * recycled block that the compressor then hands to a worker as it is. Such events' `data` is
   * pool memory: a consumer that writes it to a compressor gives it up.
   */
  coalesceType?: number;
  /**
   * Copy other CopyData messages into a recycled 2 MiB ring instead of a fresh buffer each, for
   * a consumer that is done with an event's `data` once it takes the next few events (it must
   * not keep it). START_REPLICATION catch-up streams hundreds of MiB of ~128 KiB messages: a
   * fresh buffer each piled up tens of MiB of garbage before V8 collected it.
   */
  reuseCopyBuffers?: boolean;
}

/**
 * A command running on a replication connection, consumed as an async stream of events.
 * It plugs into pg's query queue (the "submittable" contract) so pg keeps doing TLS, auth and
 * message framing; the socket is paused while the consumer lags (bounded memory).
 */
export class StreamingCommand {
  readonly events: EventQueue<ReplicationEvent>;
  private connection: WireConnection | undefined;
  private readonly onCopyDone = () => {
    this.flushBlock();
    this.events.push({ kind: 'copy-done' });
  };

  private tap: CopyDataTap | undefined;
  private block: Buffer | undefined;
  private blockLength = 0;
  private ring: Buffer | undefined;
  private ringOffset = 0;

  constructor(
    private readonly sql: string,
    flow: { pause(): void; resume(): void },
    private readonly options: StreamOptions = {},
  ) {
    this.events = new EventQueue(options.reuseCopyBuffers ? RING_QUEUE_HIGH_WATER : QUEUE_HIGH_WATER, flow);
  }

  private flushBlock(): void {
    if (!this.block || this.blockLength <= 1) return;
    const data = this.block.subarray(0, this.blockLength);
    this.block = undefined;
    this.blockLength = 0;
    this.events.push({ kind: 'copy-data', data }, data.length);
  }

  /** Sends a CopyData message (standby status updates) while in CopyBoth mode. */
  sendCopyData(chunk: Buffer): void {
    this.connection?.sendCopyFromChunk(chunk);
  }

  /** Leaves CopyBoth mode from the client side (CopyDone). */
  endCopy(): void {
    this.connection?.endCopyFrom();
  }

  // --- pg submittable contract -------------------------------------------------------------
  submit(connection: WireConnection): void {
    this.connection = connection;
    connection.on('copyDone', this.onCopyDone);
    const type = this.options.coalesceType;
    if (type !== undefined)
      this.tap = new CopyDataTap(connection.stream, type, (payload) => this.appendCoalesced(payload));
    connection.query(this.sql);
  }
  handleRowDescription(message: { fields: Array<{ name: string }> }): void {
    this.flushBlock();
    this.events.push({ kind: 'columns', names: message.fields.map((field) => field.name) });
  }
  handleDataRow(message: { fields: Array<string | null> }): void {
    this.events.push({ kind: 'row', values: message.fields });
  }
  handleCommandComplete(): void {
    this.flushBlock();
    this.events.push({ kind: 'command-complete' });
  }
  handleEmptyQuery(): void {}
  handleCopyInResponse(connection: WireConnection): void {
    const input = this.options.copyIn ?? Buffer.alloc(0);
    // CopyData messages of at most 64 KiB, the size the server reads comfortably.
    for (let offset = 0; offset < input.length; offset += 65536)
      connection.sendCopyFromChunk(input.subarray(offset, offset + 65536));
    connection.endCopyFrom();
  }
  handleCopyData(message: { chunk: Buffer }): void {
    this.flushBlock();
    const data = this.copyOut(message.chunk);
    this.events.push({ kind: 'copy-data', data }, data.length);
  }
  /** Bulk payload from the tap, in order: fills blocks to the brim, each pushed when full. */
  private appendCoalesced(payload: Buffer): void {
    let offset = 0;
    while (offset < payload.length) {
      if (!this.block) {
        this.block = BlockPool.get().take();
        this.block[0] = this.options.coalesceType!;
        this.blockLength = 1;
      }
      const n = Math.min(payload.length - offset, BLOCK_BYTES - this.blockLength);
      payload.copy(this.block, this.blockLength, offset, offset + n);
      this.blockLength += n;
      offset += n;
      if (this.blockLength === BLOCK_BYTES) this.flushBlock();
    }
  }
  private copyOut(chunk: Buffer): Buffer {
    if (!this.options.reuseCopyBuffers || chunk.length > RING_MAX_MESSAGE) return Buffer.from(chunk);
    this.ring ??= Buffer.allocUnsafeSlow(RING_BYTES);
    if (this.ringOffset + chunk.length > RING_BYTES) this.ringOffset = 0;
    const data = this.ring.subarray(this.ringOffset, this.ringOffset + chunk.length);
    chunk.copy(data);
    this.ringOffset += chunk.length;
    return data;
  }
  handleError(error: Error & { code?: string }): void {
    this.detach();
    this.events.fail(
      new WardenError('WARDEN_E_SERVER_ERROR', `replication command failed: ${error.message}`, {
        details: { command: this.sql.split(' ')[0], sqlstate: error.code },
        cause: error,
      }),
    );
  }
  handleReadyForQuery(): void {
    this.flushBlock();
    this.detach();
    this.events.end();
  }
  /** Called once the command ended (ready for the next, or failed): the owner unhooks from it. */
  onSettled: (() => void) | undefined;

  private detach(): void {
    this.onSettled?.();
    this.onSettled = undefined;
    this.tap?.uninstall();
    this.connection?.removeListener('copyDone', this.onCopyDone);
  }
}

/** A physical replication connection: IDENTIFY_SYSTEM, slots, BASE_BACKUP, START_REPLICATION. */
export class ReplicationClient {
  private closed = false;

  private constructor(private readonly client: pg.Client) {
    client.on('end', () => (this.closed = true));
  }

  static async connect(config: ConnectionConfig): Promise<ReplicationClient> {
    return new ReplicationClient(await connect(config, { replication: true }));
  }

  /** Runs a replication command whose result is small (rows as column-name → text). */
  async command(sql: string): Promise<Array<Record<string, string | null>>> {
    const rows: Array<Record<string, string | null>> = [];
    let names: string[] = [];
    for await (const event of this.stream(sql).events) {
      if (event.kind === 'columns') names = event.names;
      if (event.kind === 'row')
        rows.push(Object.fromEntries(names.map((name, i) => [name, event.values[i] ?? null])));
    }
    return rows;
  }

  /** Starts a command and returns it for streaming consumption. */
  stream(sql: string, options: StreamOptions = {}): StreamingCommand {
    if (this.closed) throw new WardenError('WARDEN_E_PROTOCOL', 'replication connection is closed');
    const socket = (this.client as unknown as { connection: WireConnection }).connection.stream;
    const flow = { pause: () => socket.pause(), resume: () => socket.resume() };
    const command = new StreamingCommand(sql, flow, options);
    const onEnd = () =>
      command.events.fail(
        new WardenError('WARDEN_E_PROTOCOL', 'the server closed the replication connection'),
      );
    this.client.on('end', onEnd);
    // Each command unhooks when it ends: a long-lived connection runs many (a listener each
    // would pile up on the client).
    command.onSettled = () => this.client.removeListener('end', onEnd);
    void this.client.query(command as unknown as pg.QueryConfig).catch?.(() => undefined);
    return command;
  }

  async identifySystem(): Promise<SystemIdentity> {
    const [row] = await this.command('IDENTIFY_SYSTEM');
    if (!row?.systemid || !row.timeline || !row.xlogpos) {
      throw new WardenError('WARDEN_E_PROTOCOL', 'IDENTIFY_SYSTEM returned no row');
    }
    return { systemId: row.systemid, timeline: Number(row.timeline), xlogpos: row.xlogpos };
  }

  async show(setting: string): Promise<string> {
    const [row] = await this.command(`SHOW ${setting}`);
    const value = row ? Object.values(row)[0] : undefined;
    if (value === undefined || value === null)
      throw new WardenError('WARDEN_E_PROTOCOL', `SHOW ${setting} returned nothing`);
    return value;
  }

  /** The slot's restart LSN and timeline, or undefined when the slot does not exist. */
  async readSlot(
    name: string,
  ): Promise<{ restartLsn: string | null; restartTli: number | null } | undefined> {
    const [row] = await this.command(`READ_REPLICATION_SLOT ${quoteIdent(name)}`);
    if (!row || row.slot_type === null) return undefined;
    return {
      restartLsn: row.restart_lsn ?? null,
      restartTli: row.restart_tli ? Number(row.restart_tli) : null,
    };
  }

  /**
   * Creates a physical slot that reserves WAL from now on; returns its consistent point. A
   * temporary slot is held by this connection and dropped by the server when it ends.
   */
  async createSlot(name: string, options: { temporary?: boolean } = {}): Promise<string> {
    const [row] = await this.command(
      `CREATE_REPLICATION_SLOT ${quoteIdent(name)}${options.temporary ? ' TEMPORARY' : ''} PHYSICAL RESERVE_WAL`,
    );
    return row?.consistent_point ?? '0/0';
  }

  /** Creates the slot unless it exists (also when another Warden process creates it at the same moment). */
  async ensureSlot(name: string): Promise<void> {
    if (await this.readSlot(name)) return;
    try {
      await this.createSlot(name);
    } catch (error) {
      // 42710 duplicate_object: created concurrently, which is what we wanted.
      if ((error as WardenError).details?.sqlstate !== '42710') throw error;
    }
  }

  /**
   * UPLOAD_MANIFEST (PostgreSQL 17+): hands the server the prior backup's backup_manifest, so a
   * following BASE_BACKUP (INCREMENTAL) on this connection sends only what changed since.
   */
  async uploadManifest(manifest: Buffer): Promise<void> {
    for await (const event of this.stream('UPLOAD_MANIFEST', { copyIn: manifest }).events) void event;
  }

  async dropSlot(name: string): Promise<void> {
    await this.command(`DROP_REPLICATION_SLOT ${quoteIdent(name)}`);
  }

  async timelineHistory(timeline: number): Promise<{ filename: string; content: Buffer }> {
    const command = this.stream(`TIMELINE_HISTORY ${timeline}`);
    let values: Array<string | null> = [];
    for await (const event of command.events) if (event.kind === 'row') values = event.values;
    const [filename, content] = values;
    if (!filename)
      throw new WardenError('WARDEN_E_PROTOCOL', `TIMELINE_HISTORY ${timeline} returned no file`);
    return { filename, content: Buffer.from(content ?? '', 'utf8') };
  }

  get isClosed(): boolean {
    return this.closed;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.client.end().catch(() => undefined);
  }

  /** Ends the connection at once (abandoning a running stream). */
  destroy(): void {
    this.closed = true;
    (this.client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
  }
}

export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

export function quoteLiteral(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}
