import SwaplineMessages

extension LegacyJSON {
    /// GetQueueStats' figures, with states named as in the unified task format.
    static func queueStats(_ stats: Swapline_V1_QueueStats) -> JSONValue {
        .object([
            ("counts", .array(stats.counts.map { count in
                .object([("workflow", .string(count.workflow)), ("status", .string(statusName(count.status))), ("count", .integer(count.count))])
            })),
            ("oldest_pending_age_ms", .integer(stats.oldestPendingAgeMs)),
            ("waiting_consumers", .integer(Int64(stats.waitingConsumers))),
            ("active_leases", .integer(stats.activeLeases)),
            ("finished_last_minute", .integer(stats.finishedLastMinute)),
            ("failed_last_minute", .integer(stats.failedLastMinute)),
            ("failure_share_last_minute", .number(stats.failureShareLastMinute)),
            ("generated_at_ms", .integer(stats.generatedAtMs)),
        ])
    }
}
