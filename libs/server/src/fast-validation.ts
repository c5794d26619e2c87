/**
 * Fast acceptance for hot request messages. protovalidate evaluates each rule generically
 * (CEL programs, pattern matches through an interpreter); for a message sent thousands of
 * times a second, such as an authorization check, that dominates the RPC. A service may
 * register a hand-written predicate for a message type that returns true only when the
 * message certainly satisfies every rule its proto declares. When it returns false the
 * validation interceptor runs protovalidate as usual, so error messages and violations
 * are always protovalidate's own; a predicate can make validation faster, never laxer,
 * provided it is sound (each service proves its predicates against protovalidate on
 * generated messages).
 */
import type { DescMessage, Message, MessageShape } from "@bufbuild/protobuf";

/** True only when `message` certainly satisfies all of its schema's validation rules. */
export type FastAccept<Desc extends DescMessage = DescMessage> = (message: MessageShape<Desc>) => boolean;

const registry = new Map<string, FastAccept>();

/** Registers the fast acceptance predicate of a message type (replacing any earlier one). */
export function registerFastAccept<Desc extends DescMessage>(schema: Desc, accept: FastAccept<Desc>): void {
  registry.set(schema.typeName, accept as FastAccept);
}

/** The predicate registered for a message type, if any. */
export function fastAcceptFor(typeName: string): ((message: Message) => boolean) | undefined {
  return registry.get(typeName) as ((message: Message) => boolean) | undefined;
}
