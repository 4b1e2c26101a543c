import Testing

@testable import SwaplineEngine

@Suite struct FaceFusionInvocationTests {
    func arguments(_ job: EngineJob, kind: TargetKind = .image) -> [String] {
        FaceFusionInvocation.arguments(
            for: job, source: "/w/source.jpg", target: "/w/target.jpg", output: "/o/result.jpg", targetKind: kind, workDirectory: "/w")
    }

    func value(after flag: String, in arguments: [String]) -> String? {
        arguments.firstIndex(of: flag).map { arguments[$0 + 1] }
    }

    @Test func modelAndPixelBoostBecomeFaceSwapperFlags() {
        let job = EngineJob(model: "simswap_unofficial_512", resolution: "768x768")
        #expect(FaceFusionInvocation.problem(with: job) == nil)
        let args = arguments(job)
        #expect(Array(args.prefix(8)) == ["facefusion.py", "headless-run", "-s", "/w/source.jpg", "-t", "/w/target.jpg", "-o", "/o/result.jpg"])
        #expect(value(after: "--face-swapper-model", in: args) == "simswap_unofficial_512")
        #expect(value(after: "--face-swapper-pixel-boost", in: args) == "768x768")
        #expect(value(after: "--processors", in: args) == "face_swapper")
        #expect(value(after: "--jobs-path", in: args) == "/w/jobs")
        #expect(value(after: "--temp-path", in: args) == "/w/temp")
        #expect(!args.contains("--output-image-resolution"))
    }

    @Test func aResolutionOutsideThePixelBoostsIsTheOutputResolution() {
        let job = EngineJob(model: "inswapper_128_fp16", resolution: "1920x1080")
        #expect(FaceFusionInvocation.problem(with: job) == nil)
        #expect(value(after: "--output-image-resolution", in: arguments(job)) == "1920x1080")
        #expect(value(after: "--output-video-resolution", in: arguments(job, kind: .video)) == "1920x1080")
        #expect(!arguments(job).contains("--face-swapper-pixel-boost"))
    }

    @Test func aFaceFusionSizingByScaleTakesOnlyPixelBoosts() {
        #expect(OutputSizing(programSource: "add_argument('--output-image-resolution', help = ...") == .resolution)
        #expect(OutputSizing(programSource: "add_argument('--output-image-scale', help = ...") == .scale)
        let boost = EngineJob(model: "inswapper_128", resolution: "512x512")
        #expect(FaceFusionInvocation.problem(with: boost, sizing: .scale) == nil)
        let other = EngineJob(model: "inswapper_128", resolution: "1920x1080")
        #expect(FaceFusionInvocation.problem(with: other, sizing: .scale)?.contains("sizes outputs by scale") == true)
    }

    @Test func faceEnhancerOptionsAddTheirProcessor() {
        let job = EngineJob(model: "inswapper_128", resolution: "512x512", options: ["face_enhancer_model": "gfpgan_1.4", "face_enhancer_blend": "80"])
        #expect(FaceFusionInvocation.problem(with: job) == nil)
        let args = arguments(job)
        let processors = args.firstIndex(of: "--processors")!
        #expect(Array(args[(processors + 1)...(processors + 2)]) == ["face_swapper", "face_enhancer"])
        #expect(value(after: "--face-enhancer-model", in: args) == "gfpgan_1.4")
        #expect(value(after: "--face-enhancer-blend", in: args) == "80")
    }

    @Test(arguments: [
        (EngineJob(model: "inswapper_256", resolution: "512x512"), "is not a FaceFusion face-swapper model"),
        (EngineJob(model: "inswapper_128", resolution: "huge"), "is not WIDTHxHEIGHT"),
        (EngineJob(model: "inswapper_128", resolution: "0x512"), "is impossible"),
        (EngineJob(model: "inswapper_128", resolution: "100000x100000"), "is impossible"),
        (EngineJob(model: "inswapper_128", resolution: "9000x512"), "is impossible"),
        (EngineJob(model: "inswapper_128", resolution: "512x512", options: ["nsfw": "off"]), "option 'nsfw' is not supported"),
        (EngineJob(model: "inswapper_128", resolution: "512x512", options: ["face_enhancer_model": "gfpgan_9"]), "is not one of"),
        (EngineJob(model: "inswapper_128", resolution: "512x512", options: ["face_enhancer_blend": "101"]), "not an integer from 0 to 100"),
    ])
    func refusedJobsSayWhy(job: EngineJob, reason: String) {
        let problem = FaceFusionInvocation.problem(with: job)
        #expect(problem?.contains(reason) == true, "\(String(describing: problem))")
    }

    @Test func theJobPartsDefaultsAreTheServers() {
        let job = EngineJob(fields: ["face_selector_mode": "one"])
        #expect(job == EngineJob(model: "inswapper_128_fp16", resolution: "1024x1024", options: ["face_selector_mode": "one"]))
    }
}

@Suite struct FaceFusionOutputLogTests {
    @Test func readsTqdmBarsRedrawnWithCarriageReturns() {
        var log = FaceFusionOutputLog()
        let first = log.append(Array("[FACEFUSION.CORE] starting\nprocessing:   0%|          | 0/40 [00:00<?, ?frame/s]".utf8))
        #expect(first == false)
        let second = log.append(Array("\rprocessing:  25%|██▌       | 10/40 [00:01<00:03, 9.91frame/s, execution_providers=['cpu']]\r".utf8))
        #expect(second)
        #expect(log.progress == FaceFusionProgress(stage: "processing", fraction: 0.25))
        log.append(Array("processing: 100%|██████████| 40/40 [00:04<00:00, 9.80frame/s]\n[FACEFUSION.CORE] done\n".utf8))
        #expect(log.progress?.fraction == 1)
        // The tail keeps real messages and a bar's last state, not each redraw.
        #expect(log.logTail == "[FACEFUSION.CORE] starting\nprocessing: 100%|██████████| 40/40 [00:04<00:00, 9.80frame/s]\n[FACEFUSION.CORE] done\n")
    }

    @Test func otherLinesAreNoProgress() {
        #expect(FaceFusionOutputLog.parseProgress("[FACEFUSION.CORE] processing to image succeed in 1.2 seconds") == nil)
        #expect(FaceFusionOutputLog.parseProgress("50% done") == nil)
    }

    @Test func theTailIsBounded() {
        var log = FaceFusionOutputLog(tailLimit: 64)
        for line in 0..<100 { log.append(Array("Traceback line \(line)\n".utf8)) }
        #expect(log.logTail.utf8.count <= 64)
        #expect(log.logTail.hasSuffix("Traceback line 99\n"))
    }
}

@Suite struct MultipartFormTests {
    /// The parts of `body` fed in pieces of `pieceSize` bytes: (head, body) each.
    static func parts(of body: [UInt8], boundary: String, pieceSize: Int) throws -> [(FormPartHead, [UInt8])] {
        var parser = MultipartStreamParser(boundary: boundary)
        var parts: [(FormPartHead, [UInt8])] = []
        var start = 0
        repeat {
            let piece = body[start..<min(body.count, start + pieceSize)]
            start += pieceSize
            for event in try parser.feed(piece) {
                switch event {
                case .partBegan(let head): parts.append((head, []))
                case .bodyBytes(let bytes): parts[parts.count - 1].1 += bytes
                case .partEnded: break
                }
            }
        } while start < body.count
        try parser.finish()
        return parts
    }

    @Test(arguments: [1, 3, 7, 1000])
    func splitsTheWorkersRequestWhateverThePieces(pieceSize: Int) throws {
        let body = Array("--b1\r\nContent-Disposition: form-data; name=\"job\"\r\nContent-Type: application/json\r\n\r\n{}\r\n--b1\r\nContent-Disposition: form-data; name=\"target\"; filename=\"target.mp4\"\r\n\r\n\r\nbytes\r\n--b\r\n--b1--\r\n".utf8)
        #expect(MultipartForm.boundary(ofContentType: "multipart/form-data; boundary=b1") == "b1")
        let parts = try Self.parts(of: body, boundary: "b1", pieceSize: pieceSize)
        #expect(parts.map(\.0.name) == ["job", "target"])
        #expect(parts[0].0.contentType == "application/json")
        #expect(parts[0].1 == Array("{}".utf8))
        #expect(parts[1].0.filename == "target.mp4")
        #expect(parts[1].1 == Array("\r\nbytes\r\n--b".utf8))  // a near-boundary inside the body is body
    }

    @Test func truncatedBodiesAreMalformed() {
        let body = Array("--b1\r\nContent-Disposition: form-data; name=\"job\"\r\n\r\n{}".utf8)
        #expect(throws: MultipartForm.Malformed.self) { try Self.parts(of: body, boundary: "b1", pieceSize: 5) }
        #expect(throws: MultipartForm.Malformed.self) { try Self.parts(of: [], boundary: "b1", pieceSize: 5) }
        let endless = Array("--b1\r\nContent-Disposition: form-data; name=\"job\"\r\n".utf8) + Array(repeating: UInt8(ascii: "x"), count: 20_000)
        #expect(throws: MultipartForm.Malformed.self) { try Self.parts(of: endless, boundary: "b1", pieceSize: 4096) }
        #expect(MultipartForm.boundary(ofContentType: "application/json") == nil)
    }
}

@Suite struct EngineSlotsTests {
    @Test func refusesBeyondSlotsAndQueueAndHandsFreedSlotsOn() async {
        let slots = EngineSlots(slots: 2, queueLimit: 1)
        let first = await slots.acquire()
        let second = await slots.acquire()
        #expect(Set([first, second]) == [0, 1])
        let waiter = Task { await slots.acquire() }
        while await slots.queued == 0 { await Task.yield() }
        #expect(await slots.isFull)
        #expect(await slots.acquire() == nil)
        await slots.release(1)
        #expect(await waiter.value == 1)
        #expect(await slots.running == 2)
        await slots.release(0)
        await slots.release(1)
        #expect(await slots.running == 0)
    }

    @Test func aCancelledWaiterLeavesTheQueueAndNeverGetsASlot() async {
        let slots = EngineSlots(slots: 1, queueLimit: 2)
        let running = await slots.acquire()
        let abandoned = Task { await slots.acquire() }
        while await slots.queued == 0 { await Task.yield() }
        let next = Task { await slots.acquire() }
        while await slots.queued < 2 { await Task.yield() }
        abandoned.cancel()
        #expect(await abandoned.value == nil)
        #expect(await slots.queued == 1)
        await slots.release(running ?? 0)
        #expect(await next.value == 0)  // the slot went past the abandoned job
    }
}
