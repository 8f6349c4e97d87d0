#!/usr/bin/env python3
"""Writes typed Swift ttrpc services for the services of .proto files.

Input is a descriptor set from `protoc --include_imports --include_source_info
--descriptor_set_out=SET`. For each service of each named file it writes, into
OUT_DIR/<swift_name>.ttrpc.swift:
  - `protocol <Prefix><Service>Provider`: one `async throws` method per RPC;
  - `extension TTRPCServer { func register(_: some <Prefix><Service>Provider) }`;
  - `struct <Prefix><Service>Client`: one method per RPC over a TTRPCClient.
Type names follow protoc-gen-swift's rules (package "a.b_c" -> prefix "A_BC_").
Usage: ttrpc_gen.py SET OUT_DIR PROTO_PATH=SWIFT_NAME... [--visibility public|internal]
"""
import os
import sys

from google.protobuf import descriptor_pb2

SWIFT_KEYWORDS = {
    'associatedtype', 'class', 'deinit', 'enum', 'extension', 'fileprivate', 'func', 'import', 'init',
    'inout', 'internal', 'let', 'open', 'operator', 'private', 'protocol', 'public', 'rethrows', 'static',
    'struct', 'subscript', 'typealias', 'var', 'break', 'case', 'continue', 'default', 'defer', 'do',
    'else', 'fallthrough', 'for', 'guard', 'if', 'in', 'repeat', 'return', 'switch', 'where', 'while',
    'as', 'catch', 'false', 'is', 'nil', 'super', 'self', 'Self', 'throw', 'throws', 'true', 'try', 'Any',
}


def type_prefix(package, options):
    """protoc-gen-swift's NamingUtils.typePrefix."""
    if options.HasField('swift_prefix'):
        return options.swift_prefix
    if not package:
        return ''
    out, upper = '', True
    for c in package:
        if c == '_':
            upper = True
        elif c == '.':
            upper = True
            out += '_'
        else:
            if not out and c.isdigit():
                out += '_'
            out += c.upper() if upper else c
            upper = False
    return out + '_'


def lower_camel(name):
    """RPC name to Swift method name: State -> state, CloseIO -> closeIO, IOStats -> ioStats."""
    run = 0
    while run < len(name) and name[run].isupper():
        run += 1
    if run == 0:
        result = name
    elif run == 1 or run == len(name):
        result = name[:run].lower() + name[run:]
    else:  # an acronym followed by a word: keep the word's capital
        result = name[:run - 1].lower() + name[run - 1:]
    return '`%s`' % result if result in SWIFT_KEYWORDS else result


class TypeTable:
    """Maps fully qualified proto message names ('.pkg.Msg') to Swift type names."""

    def __init__(self, files):
        self.names = {}
        for f in files:
            prefix = type_prefix(f.package, f.options)
            scope = '.' + f.package if f.package else ''
            for m in f.message_type:
                self._add(m, scope, prefix + m.name)

    def _add(self, message, scope, swift):
        full = scope + '.' + message.name
        self.names[full] = swift
        for nested in message.nested_type:
            self._add(nested, full, swift + '.' + nested.name)

    def swift(self, full_name):
        if full_name not in self.names:
            sys.exit('ttrpc_gen: unknown message type %s' % full_name)
        return self.names[full_name]


def comments(f):
    """Leading comments of methods, keyed by (service index, method index)."""
    found = {}
    for loc in f.source_code_info.location:
        path = list(loc.path)
        # FileDescriptorProto.service = 6; ServiceDescriptorProto.method = 2
        if len(path) == 4 and path[0] == 6 and path[2] == 2 and loc.leading_comments.strip():
            found[(path[1], path[3])] = [l.strip() for l in loc.leading_comments.strip().splitlines()]
    return found


def doc(lines, indent):
    return ''.join('%s/// %s\n' % (indent, l) if l else '%s///\n' % indent for l in lines)


def render_service(f, si, service, types, vis, notes):
    prefix = type_prefix(f.package, f.options)
    full = (f.package + '.' if f.package else '') + service.name
    provider = prefix + service.name + 'Provider'
    client = prefix + service.name + 'Client'
    methods = []
    for mi, m in enumerate(service.method):
        if m.client_streaming or m.server_streaming:
            sys.exit('ttrpc_gen: %s/%s: streaming RPCs are not supported' % (full, m.name))
        methods.append((m.name, lower_camel(m.name), types.swift(m.input_type),
                        types.swift(m.output_type), notes.get((si, mi), [])))

    out = []
    out.append('/// Server side of `%s`. Implement it and pass it to `TTRPCServer.register(_:)`.\n' % full)
    out.append('/// Throw `TTRPCError` to answer with a status code; any other error is answered as `unknown`.\n')
    out.append('%s protocol %s: Sendable {\n' % (vis, provider))
    for name, swift, req, resp, note in methods:
        out.append(doc(note, '    '))
        out.append('    func %s(_ request: %s, context: TTRPCCallContext) async throws -> %s\n' % (swift, req, resp))
    out.append('}\n\n')

    out.append('extension TTRPCServer {\n')
    out.append('    /// Serves `%s` with `provider`, replacing an earlier registration of that service.\n' % full)
    out.append('    %s func register(_ provider: some %s) {\n' % (vis, provider))
    out.append('        var service = TTRPCService(name: "%s")\n' % full)
    for name, swift, req, resp, _ in methods:
        out.append('        service.addMethod("%s") { (request: %s, context) in\n' % (name, req))
        out.append('            try await provider.%s(request, context: context)\n' % swift)
        out.append('        }\n')
    out.append('        register(service)\n')
    out.append('    }\n')
    out.append('}\n\n')

    out.append('/// Client side of `%s` over one ttrpc connection.\n' % full)
    out.append('%s struct %s: Sendable {\n' % (vis, client))
    out.append('    %s static let serviceName = "%s"\n' % (vis, full))
    out.append('    %s let connection: TTRPCClient\n\n' % vis)
    out.append('    %s init(_ connection: TTRPCClient) {\n' % vis)
    out.append('        self.connection = connection\n')
    out.append('    }\n')
    for name, swift, req, resp, note in methods:
        out.append('\n')
        out.append(doc(note, '    '))
        out.append('    %s func %s(_ request: %s, options: TTRPCCallOptions = TTRPCCallOptions()) async throws -> %s {\n'
                   % (vis, swift, req, resp))
        out.append('        try await connection.call(service: Self.serviceName, method: "%s", request: request, options: options)\n'
                   % name)
        out.append('    }\n')
    out.append('}\n')
    return ''.join(out)


def main(argv):
    vis = 'public'
    if '--visibility' in argv:
        i = argv.index('--visibility')
        vis = argv[i + 1]
        del argv[i:i + 2]
    if len(argv) < 3:
        sys.exit(__doc__)
    descriptor_set, out_dir, targets = argv[0], argv[1], dict(t.split('=', 1) for t in argv[2:])
    fds = descriptor_pb2.FileDescriptorSet()
    with open(descriptor_set, 'rb') as fh:
        fds.ParseFromString(fh.read())
    types = TypeTable(fds.file)
    for f in fds.file:
        if f.name not in targets or not f.service:
            continue
        notes = comments(f)
        body = '\n'.join(render_service(f, si, s, types, vis, notes) for si, s in enumerate(f.service))
        header = ('// DO NOT EDIT.\n'
                  '// Generated by scripts/protogen/ttrpc_gen.py from %s (make protos).\n\n'
                  'import SwiftProtobuf\nimport TTRPC\n\n' % f.name)
        path = os.path.join(out_dir, targets[f.name] + '.ttrpc.swift')
        with open(path, 'w', encoding='utf-8') as fh:
            fh.write(header + body)


if __name__ == '__main__':
    main(sys.argv[1:])
