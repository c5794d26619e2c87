import { type DescFile, type Registry, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { ServerReflection as ReflectionV1 } from "@uab/proto/gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ReflectionV1Alpha } from "@uab/proto/gen/grpc/reflection/v1alpha/reflection_pb.js";

type ReflectionRequest = {
  host: string;
  messageRequest:
    | { case: "fileByFilename"; value: string }
    | { case: "fileContainingSymbol"; value: string }
    | { case: "fileContainingExtension"; value: { containingType: string; extensionNumber: number } }
    | { case: "allExtensionNumbersOfType"; value: string }
    | { case: "listServices"; value: string }
    | { case: undefined; value?: undefined };
};

/** Files plus their transitive imports, dependencies first, each once. */
function withDependencies(file: DescFile): Uint8Array[] {
  const seen = new Set<string>();
  const out: Uint8Array[] = [];
  const visit = (f: DescFile) => {
    if (seen.has(f.proto.name)) return;
    seen.add(f.proto.name);
    for (const d of f.dependencies) visit(d);
    out.push(toBinary(FileDescriptorProtoSchema, f.proto));
  };
  visit(file);
  return out;
}

/** Every file that declares a type in `registry`, with all their imports, by name. */
function filesOf(registry: Registry): Map<string, DescFile> {
  const files = new Map<string, DescFile>();
  const visit = (f: DescFile) => {
    // DescFile.name drops ".proto"; reflection speaks in file names as imported.
    if (files.has(f.proto.name)) return;
    files.set(f.proto.name, f);
    for (const d of f.dependencies) visit(d);
  };
  for (const desc of registry) visit(desc.file);
  return files;
}

function answer(registry: Registry, files: Map<string, DescFile>, services: readonly string[], req: ReflectionRequest) {
  const r = req.messageRequest;
  const fileResponse = (file: DescFile | undefined, what: string) =>
    file
      ? { case: "fileDescriptorResponse" as const, value: { fileDescriptorProto: withDependencies(file) } }
      : { case: "errorResponse" as const, value: { errorCode: 5, errorMessage: `${what} not found` } };
  switch (r.case) {
    case "listServices":
      return { case: "listServicesResponse" as const, value: { service: services.map((name) => ({ name })) } };
    case "fileByFilename":
      return fileResponse(files.get(r.value), r.value);
    case "fileContainingSymbol": {
      let desc = registry.get(r.value);
      if (!desc) {
        // A method: `pkg.Service.Method`.
        const parent = r.value.slice(0, r.value.lastIndexOf("."));
        desc = registry.get(parent);
      }
      return fileResponse(desc?.file, r.value);
    }
    case "fileContainingExtension": {
      const ext = registry.getExtensionFor(registry.getMessage(r.value.containingType)!, r.value.extensionNumber);
      return fileResponse(ext?.file, `extension ${r.value.extensionNumber} of ${r.value.containingType}`);
    }
    case "allExtensionNumbersOfType":
      return {
        case: "errorResponse" as const,
        value: { errorCode: 12, errorMessage: "extension listing is not supported" },
      };
    default:
      return { case: "errorResponse" as const, value: { errorCode: 3, errorMessage: "empty reflection request" } };
  }
}

/**
 * gRPC server reflection (v1 and v1alpha) over `registry`, so `buf curl` and `grpcurl` can
 * call UAB without a local schema. `services` are the fully qualified names served.
 */
export function reflectionServices(registry: Registry, services: readonly string[]) {
  const files = filesOf(registry);
  const impl = {
    async *serverReflectionInfo(requests: AsyncIterable<ReflectionRequest>) {
      for await (const req of requests) {
        yield { validHost: req.host, originalRequest: req, messageResponse: answer(registry, files, services, req) };
      }
    },
  };
  return [
    { service: ReflectionV1, impl: impl as unknown as ServiceImpl<typeof ReflectionV1> },
    { service: ReflectionV1Alpha, impl: impl as unknown as ServiceImpl<typeof ReflectionV1Alpha> },
  ] as const;
}
