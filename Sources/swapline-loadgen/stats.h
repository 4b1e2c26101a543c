// What one thread measured, merged across threads at the end of a run.
#ifndef SWAPLINE_LOADGEN_STATS_H
#define SWAPLINE_LOADGEN_STATS_H

#include <stdint.h>
#include <stdio.h>

#include "grpc_client.h"

// The calls a run makes; UpdateStatus is split by the status it reports.
enum rpc { RPC_CREATE_TASK, RPC_FETCH_TASK, RPC_UPDATE_PROCESSING, RPC_UPDATE_COMPLETED, RPC_COUNT };

const char *rpc_name(enum rpc rpc);

// Every sample is kept (microseconds), so percentiles are exact; a run of 10^6 calls needs 4 MB.
struct latencies {
    uint32_t *micros;
    size_t count, capacity;
};

void latencies_add(struct latencies *latencies, int64_t nanoseconds);
// Sorts the samples; 0 when there are none.
double latencies_percentile_ms(struct latencies *latencies, double percentile);

struct id_list {
    char **ids;
    size_t count, capacity;
};

struct stats {
    uint64_t outcomes[RPC_COUNT][OUTCOME_COUNT];
    char first_message[RPC_COUNT][OUTCOME_COUNT][96];  // the first error text seen of each kind
    struct latencies calls[RPC_COUNT];                  // successful calls only
    struct latencies cycles;                            // full cycles, create to COMPLETED
    uint64_t empty_fetches;                             // FetchTask answered with no task
    struct id_list completed;                           // task ids acknowledged COMPLETED
    int64_t last_done_ns;
};

// Counts one finished call; `detail` says why a BAD_RESPONSE was one (else the grpc-message).
void stats_record(struct stats *stats, enum rpc rpc, const struct call *call, int outcome, const char *detail);
void stats_add_completed(struct stats *stats, const char *task_id);
// Moves everything `from` holds into `into`; `from` is left empty.
void stats_merge(struct stats *into, struct stats *from);
uint64_t stats_errors(const struct stats *stats);
void stats_print_errors(const struct stats *stats, FILE *out);
// Prints every task id acknowledged COMPLETED more than once; returns how many such ids.
size_t stats_report_duplicates(struct stats *stats, FILE *out);
void stats_free(struct stats *stats);

#endif
