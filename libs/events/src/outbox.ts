import {
  create,
  type DescMessage,
  type Message,
  type MessageInitShape,
  type MessageShape,
  type Registry,
  toBinary,
} from "@bufbuild/protobuf";
import { anyPack, anyUnpack, timestampNow } from "@bufbuild/protobuf/wkt";
import { type PrincipalType as CorePrincipalType, currentRequestContext, injectTraceContext, newId } from "@uab/core";
import {
  ActorSchema,
  type Event,
  EventSchema,
  PrincipalType,
  ResourceSchema,
  TraceContextSchema,
} from "@uab/proto/gen/uab/events/v1/event_pb.js";
import type { Generated, Insertable, Kysely, Selectable, Transaction } from "kysely";
import { eventSubject } from "./subjects.js";

/** The `outbox` table created by {@link eventsMigrations}. */
export interface OutboxTable {
  /** The event id (`evt_…`); ids sort by creation time, which is the publish order. */
  id: string;
  /** The event's tenant; NULL for platform events. */
  tenant_id: string | null;
  /** The logical subject to publish on. */
  subject: string;
  /** The payload's fully qualified type, for operators looking at a backlog. */
  type: string;
  /** The serialized `uab.events.v1.Event`. */
  data: Uint8Array;
  /** Message headers (trace context). */
  headers: Record<string, string>;
  /** When the row was written. */
  created_at: Generated<Date>;
}

/** The `inbox` table created by {@link eventsMigrations}. */
export interface InboxTable {
  /** The consumer's durable name. */
  consumer: string;
  /** The handled event's id. */
  event_id: string;
  /** The event's tenant; NULL for platform events. */
  tenant_id: string | null;
  /** When the event was handled. */
  handled_at: Generated<Date>;
}

/** The tables this library adds to a service schema. */
export interface EventsTables {
  /** See {@link OutboxTable}. */
  outbox: OutboxTable;
  /** See {@link InboxTable}. */
  inbox: InboxTable;
}

/** An outbox row as read. */
export type OutboxRow = Selectable<OutboxTable>;
/** An outbox row to insert. */
export type NewOutboxRow = Insertable<OutboxTable>;

/** What {@link appendEvent} needs to know about a change. */
export interface AppendEventInput<Desc extends DescMessage> {
  /** The emitting service, one subject token (`tenancy`). */
  readonly source: string;
  /** The payload's message schema (`TenantCreatedSchema`); its type name becomes the event type. */
  readonly schema: Desc;
  /** The payload, as a message or its init shape. */
  readonly payload: MessageInitShape<Desc>;
  /**
   * The tenant the change belongs to; omit for platform events. Deliberately not taken
   * from the request context: a platform administrator acting on a tenant makes events of
   * that tenant, not of the platform.
   */
  readonly tenantId?: string | undefined;
  /** The resource that changed. */
  readonly resource: { readonly type: string; readonly id: string; readonly displayName?: string | undefined };
  /** The payload's schema version; defaults to 1. */
  readonly schemaVersion?: number;
}

const PRINCIPAL_TYPES: Record<CorePrincipalType, PrincipalType> = {
  user: PrincipalType.USER,
  service_account: PrincipalType.SERVICE_ACCOUNT,
  api_key: PrincipalType.API_KEY,
  system: PrincipalType.SYSTEM,
};

/**
 * Builds the `uab.events.v1.Event` envelope of a change: a new `evt_…` id, the payload
 * packed in an `Any`, the actor and request id from the current request context (the
 * `system` principal outside a request), the active trace context and the current time.
 */
export function buildEvent<Desc extends DescMessage>(input: AppendEventInput<Desc>): Event {
  const ctx = currentRequestContext();
  const principal = ctx?.principal;
  const trace = injectTraceContext();
  return create(EventSchema, {
    id: newId("event"),
    type: input.schema.typeName,
    source: input.source,
    tenantId: input.tenantId ?? "",
    actor: create(ActorSchema, {
      principalId: principal?.id ?? "system",
      principalType: principal ? PRINCIPAL_TYPES[principal.type] : PrincipalType.SYSTEM,
      principalTenantId: principal?.tenantId ?? "",
      impersonatorId: principal?.impersonatorId ?? "",
      sessionId: principal?.sessionId ?? "",
      ipAddress: ctx?.ip ?? "",
      userAgent: ctx?.userAgent ?? "",
    }),
    occurredAt: timestampNow(),
    resource: create(ResourceSchema, {
      type: input.resource.type,
      id: input.resource.id,
      displayName: input.resource.displayName ?? "",
    }),
    payload: anyPack(input.schema, create(input.schema, input.payload)),
    trace: create(TraceContextSchema, { traceparent: trace.traceparent ?? "", tracestate: trace.tracestate ?? "" }),
    schemaVersion: input.schemaVersion ?? 1,
    requestId: ctx?.requestId ?? "",
  });
}

/**
 * Appends an event to the outbox inside the caller's transaction, so the event is
 * published if and only if the change commits. The transaction must be scoped to the
 * event's tenant (`withTenant`) or, for platform events, to the platform (`withPlatform`):
 * row-level security rejects anything else. Returns the envelope.
 */
export async function appendEvent<DB, Desc extends DescMessage>(
  tx: Kysely<DB> | Transaction<DB>,
  input: AppendEventInput<Desc>,
): Promise<Event> {
  // Outside a transaction the event could be committed without the change (or vice versa).
  if (!tx.isTransaction) throw new Error("appendEvent must run inside the transaction of the change");
  const event = buildEvent(input);
  const subject = eventSubject(input.source, input.tenantId, event.type);
  const headers: Record<string, string> = {};
  if (event.trace?.traceparent) headers.traceparent = event.trace.traceparent;
  if (event.trace?.tracestate) headers.tracestate = event.trace.tracestate;
  await (tx as unknown as Kysely<EventsTables>)
    .insertInto("outbox")
    .values({
      id: event.id,
      tenant_id: input.tenantId ?? null,
      subject,
      type: event.type,
      data: toBinary(EventSchema, event),
      // node-postgres sends a plain object as JSON text, which the jsonb column parses.
      headers,
    })
    .execute();
  return event;
}

/**
 * Unpacks an event's payload. With a message schema it returns that message, or
 * undefined when the payload is of another type; with a registry, whichever registered
 * type the payload is, or undefined when the registry does not know it.
 */
export function unpackPayload<Desc extends DescMessage>(event: Event, schema: Desc): MessageShape<Desc> | undefined;
/** See the schema overload. */
export function unpackPayload(event: Event, registry: Registry): Message | undefined;
export function unpackPayload(event: Event, schemaOrRegistry: DescMessage | Registry): unknown {
  if (!event.payload) return undefined;
  return schemaOrRegistry.kind === "message"
    ? anyUnpack(event.payload, schemaOrRegistry)
    : anyUnpack(event.payload, schemaOrRegistry);
}
