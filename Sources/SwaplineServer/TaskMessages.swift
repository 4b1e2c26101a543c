import SwaplineCore
import SwaplineMessages

/// Conversions between the scheduler's records and the wire messages of swapline.v1.
enum TaskMessages {
    static func message(_ record: TaskRecord) -> Swapline_V1_Task {
        Swapline_V1_Task(
            taskID: record.taskID, workflow: record.workflow, environment: record.environment,
            targetPort: record.targetPort, params: message(record.params), status: status(record.state),
            sourceChannel: record.sourceChannel, createdAtMs: record.createdAtMs, updatedAtMs: record.updatedAtMs,
            progress: record.progress, error: record.error, result: record.output.map(message),
            attempt: record.attempt, priority: record.priority)
    }

    static func message(_ params: FaceSwapParameters) -> Swapline_V1_FaceSwapParams {
        Swapline_V1_FaceSwapParams(
            sourceURL: params.sourceURL, targetURL: params.targetURL, resolution: params.resolution,
            model: params.model, options: params.options)
    }

    static func message(_ output: TaskOutput) -> Swapline_V1_TaskResult {
        Swapline_V1_TaskResult(
            outputURL: output.outputURL, outputs: output.outputs, processingTime: output.processingTime,
            jobID: output.jobID, storageProvider: output.storageProviderSummary(fittingIn: MessageLimits.nameBytes),
            outputProviders: output.outputProviders, filesExpiredAtMs: output.filesExpiredAtMs ?? 0)
    }

    static func parameters(_ message: Swapline_V1_FaceSwapParams?) -> FaceSwapParameters {
        let message = message ?? Swapline_V1_FaceSwapParams()
        return FaceSwapParameters(
            sourceURL: message.sourceURL, targetURL: message.targetURL, resolution: message.resolution,
            model: message.model, options: message.options)
    }

    /// A consumer's result. Its `output_providers`, when it sends them, are stored whole
    /// (`storage_provider` is limited to 128 bytes, too short for the per-output list of many
    /// outputs): the map is bounded by the message limits of maps instead.
    static func output(_ message: Swapline_V1_TaskResult) -> TaskOutput {
        TaskOutput(
            outputURL: message.outputURL, outputs: message.outputs, processingTime: message.processingTime,
            jobID: message.jobID,
            storageProvider: message.outputProviders.isEmpty
                ? message.storageProvider : TaskOutput.storageProviderList(of: message.outputProviders))
    }

    static func status(_ state: TaskState) -> Swapline_V1_TaskStatus {
        switch state {
        case .pending: return .pending
        case .processing: return .processing
        case .completed: return .completed
        case .failed: return .failed
        case .cancelled: return .cancelled
        }
    }

    /// `nil` for UNSPECIFIED or a value this server does not know.
    static func state(_ status: Swapline_V1_TaskStatus) -> TaskState? {
        switch status {
        case .pending: return .pending
        case .processing: return .processing
        case .completed: return .completed
        case .failed: return .failed
        case .cancelled: return .cancelled
        default: return nil
        }
    }

    /// The FaceSwapResponse of a finished task: the shape of the original service's
    /// synchronous endpoint, with the task id added.
    static func faceSwapResponse(_ record: TaskRecord) -> Swapline_V1_FaceSwapResponse {
        let output = record.output ?? TaskOutput()
        var metadata: [String: String] = [:]
        for (format, url) in output.outputs where format != "jpg" { metadata["\(format)_url"] = url }
        if !output.outputURL.isEmpty { metadata["storage_url"] = output.outputURL }
        if !output.storageProvider.isEmpty { metadata["storage_provider"] = output.storageProviderSummary(fittingIn: MessageLimits.nameBytes) }
        if !record.error.isEmpty { metadata["error"] = record.error }
        let status: String
        switch record.state {
        case .completed: status = "success"
        case .failed: status = "failed"
        case .cancelled: status = "cancelled"
        case .pending, .processing: status = record.state.rawValue.lowercased()
        }
        return Swapline_V1_FaceSwapResponse(
            status: status, outputPath: output.outputURL, processingTime: output.processingTime,
            jobID: output.jobID, metadata: metadata, taskID: record.taskID)
    }
}
