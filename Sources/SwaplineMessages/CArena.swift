// Scratch memory for the protobuf-c structs of one encoding or decoding.
internal import CSwaplineProto

/// A bump allocator for the C strings, bytes, structs and pointer arrays that protobuf-c packs
/// from (encoding) or unpacks into (decoding, as its `ProtobufCAllocator`). Everything lives
/// until `CArena.with` returns and is freed there, in one place; nothing is freed one by one.
///
/// The first 2 KiB come from the stack, which covers a typical `Task`, so most messages
/// allocate nothing on the heap; larger ones spill into heap chunks chained together.
struct CArena: ~Copyable {
    private static let stackBytes = 2048
    private static let chunkHeader = 16  // a heap chunk starts with the address of the previous one
    private static let maxChunkBytes = 1 << 20

    private var cursor: UnsafeMutableRawPointer
    private var end: UnsafeMutableRawPointer
    /// The newest heap chunk; each links to the one before.
    private var heapChunks: UnsafeMutableRawPointer?
    private var nextChunkBytes = 4096

    private init(_ first: UnsafeMutableRawBufferPointer) {
        cursor = first.baseAddress!
        end = first.baseAddress! + first.count
        heapChunks = nil
    }

    /// Runs `body` with a fresh arena and frees all its memory afterwards.
    static func with<Result>(_ body: (inout CArena) -> Result) -> Result {
        withUnsafeTemporaryAllocation(byteCount: stackBytes, alignment: 16) { stack in
            var arena = CArena(stack)
            defer { arena.freeHeapChunks() }
            return body(&arena)
        }
    }

    private mutating func freeHeapChunks() {
        while let chunk = heapChunks {
            heapChunks = chunk.load(as: UnsafeMutableRawPointer?.self)
            chunk.deallocate()
        }
    }

    /// `byteCount` bytes aligned to `alignment` (at most 16).
    mutating func allocate(byteCount: Int, alignment: Int) -> UnsafeMutableRawPointer {
        let start = cursor.alignedUp(toMultipleOf: alignment)
        if byteCount <= start.distance(to: end) {
            cursor = start + byteCount
            return start
        }
        let size = Swift.max(byteCount + Self.chunkHeader, nextChunkBytes)
        nextChunkBytes = Swift.min(nextChunkBytes * 2, Self.maxChunkBytes)
        let chunk = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
        chunk.storeBytes(of: heapChunks, as: UnsafeMutableRawPointer?.self)
        heapChunks = chunk
        cursor = chunk + Self.chunkHeader + byteCount
        end = chunk + size
        return chunk + Self.chunkHeader
    }

    private mutating func allocate<T>(_ type: T.Type, count: Int) -> UnsafeMutablePointer<T> {
        allocate(byteCount: MemoryLayout<T>.stride * count, alignment: MemoryLayout<T>.alignment)
            .bindMemory(to: T.self, capacity: count)
    }

    // MARK: Decoding

    /// Runs `body` with a `ProtobufCAllocator` that allocates from this arena (and frees
    /// nothing: the arena frees it all at the end), for `protobuf_c_message_unpack`.
    mutating func withAllocator<Result>(_ body: (UnsafeMutablePointer<ProtobufCAllocator>) -> Result) -> Result {
        withUnsafeMutablePointer(to: &self) { arena in
            var allocator = ProtobufCAllocator(
                alloc: { arena, size in
                    arena!.assumingMemoryBound(to: CArena.self).pointee.allocate(byteCount: size, alignment: 16)
                },
                free: { _, _ in },
                allocator_data: UnsafeMutableRawPointer(arena))
            return body(&allocator)
        }
    }

    // MARK: Encoding

    /// A NUL-terminated copy of `string`. (protobuf-c packs C strings: a string with an
    /// embedded U+0000 is sent up to it.)
    mutating func cString(_ string: String) -> UnsafeMutablePointer<CChar> {
        if let copy = string.utf8.withContiguousStorageIfAvailable({ cString($0) }) {
            return copy
        }
        var string = string  // not contiguous (e.g. bridged): let String make it so
        return string.withUTF8 { cString($0) }
    }

    private mutating func cString(_ utf8: UnsafeBufferPointer<UInt8>) -> UnsafeMutablePointer<CChar> {
        let copy = allocate(CChar.self, count: utf8.count + 1)
        if let source = utf8.baseAddress {
            UnsafeMutableRawPointer(copy).copyMemory(from: source, byteCount: utf8.count)
        }
        copy[utf8.count] = 0
        return copy
    }

    /// A `bytes` field holding a copy of `bytes`.
    mutating func bytes(_ bytes: [UInt8]) -> ProtobufCBinaryData {
        bytes.withUnsafeBytes { source in
            let copy = allocate(UInt8.self, count: source.count)
            if let base = source.baseAddress {
                UnsafeMutableRawPointer(copy).copyMemory(from: base, byteCount: source.count)
            }
            return ProtobufCBinaryData(len: source.count, data: copy)
        }
    }

    /// A C message struct at its default value (descriptor set, strings "", numbers 0).
    private mutating func newMessage<C: CMessage>(_ type: C.Type) -> UnsafeMutablePointer<C> {
        let message = allocate(C.self, count: 1)
        C.initialize(message)  // the generated `..._init` assigns the whole (trivial) struct
        return message
    }

    /// The C struct of `message`, with all its fields set.
    mutating func message<Message: CBridged>(_ message: Message) -> UnsafeMutablePointer<Message.CType> {
        filled(message)
    }

    /// A singular message field: NULL when absent.
    mutating func message<Message: CBridged>(_ message: Message?) -> UnsafeMutablePointer<Message.CType>? {
        guard let message else { return nil }
        return filled(message)
    }

    private mutating func filled<Message: CBridged>(_ message: Message) -> UnsafeMutablePointer<Message.CType> {
        let c = newMessage(Message.CType.self)
        message.fill(&c.pointee, arena: &self)
        return c
    }

    /// A `repeated` message field: count and array of struct pointers.
    mutating func messages<Message: CBridged>(
        _ messages: [Message]
    ) -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<Message.CType>?>?) {
        pointerArray(messages) { arena, element in arena.filled(element) }
    }

    /// A `repeated string` field: count and array of C strings.
    mutating func cStrings(_ strings: [String]) -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) {
        pointerArray(strings) { arena, string in arena.cString(string) }
    }

    /// A `repeated` enum field: count and array of values.
    mutating func enums<Value: ProtoEnum, C: CEnum>(_ values: [Value]) -> (Int, UnsafeMutablePointer<C>?) {
        guard !values.isEmpty else { return (0, nil) }
        let array = allocate(C.self, count: values.count)
        for (index, value) in values.enumerated() { (array + index).initialize(to: value.c()) }
        return (values.count, array)
    }

    /// A `map<string, string>` field: count and array of entry pointers. Entries come in the
    /// dictionary's order (protobuf does not order map entries).
    mutating func map<Entry: CStringMapEntry>(
        _ map: [String: String]
    ) -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<Entry>?>?) {
        pointerArray(map) { arena, pair in
            let entry = arena.newMessage(Entry.self)
            entry.pointee.key = arena.cString(pair.key)
            entry.pointee.value = arena.cString(pair.value)
            return entry
        }
    }

    private mutating func pointerArray<Elements: Collection, Pointee>(
        _ elements: Elements, _ make: (inout CArena, Elements.Element) -> UnsafeMutablePointer<Pointee>
    ) -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<Pointee>?>?) {
        let count = elements.count
        guard count > 0 else { return (0, nil) }
        let array = allocate(UnsafeMutablePointer<Pointee>?.self, count: count)
        for (index, element) in zip(0..., elements) {
            (array + index).initialize(to: make(&self, element))
        }
        return (count, array)
    }
}
