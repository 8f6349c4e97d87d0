// The generated API's signatures use SwiftProtobuf's types (Google_Protobuf_Any, _Empty,
// _Timestamp) and TTRPC's (TTRPCServer, TTRPCClient, TTRPCError): importing ContainerdAPI
// brings both.
@_exported import SwiftProtobuf
@_exported import TTRPC
