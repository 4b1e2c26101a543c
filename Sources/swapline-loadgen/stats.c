#include "stats.h"

#include <stdlib.h>
#include <string.h>

const char *rpc_name(enum rpc rpc) {
    static const char *const names[RPC_COUNT] = {
        "CreateTask", "FetchTask", "UpdateStatus PROCESSING", "UpdateStatus COMPLETED",
    };
    return names[rpc];
}

void latencies_add(struct latencies *latencies, int64_t nanoseconds) {
    if (latencies->count == latencies->capacity) {
        latencies->capacity = latencies->capacity ? latencies->capacity * 2 : 4096;
        latencies->micros = xrealloc(latencies->micros, latencies->capacity * sizeof *latencies->micros);
    }
    int64_t micros = nanoseconds / 1000;
    latencies->micros[latencies->count++] = micros > UINT32_MAX ? UINT32_MAX : (uint32_t)micros;
}

static int compare_micros(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

double latencies_percentile_ms(struct latencies *latencies, double percentile) {
    if (latencies->count == 0) return 0;
    qsort(latencies->micros, latencies->count, sizeof *latencies->micros, compare_micros);
    size_t rank = (size_t)(percentile / 100.0 * (double)(latencies->count - 1) + 0.5);
    return latencies->micros[rank] / 1000.0;
}

static void latencies_merge(struct latencies *into, struct latencies *from) {
    if (into->count + from->count > into->capacity) {
        into->capacity = into->count + from->count;
        into->micros = xrealloc(into->micros, into->capacity * sizeof *into->micros);
    }
    if (from->count > 0) memcpy(into->micros + into->count, from->micros, from->count * sizeof *from->micros);
    into->count += from->count;
    free(from->micros);
    *from = (struct latencies){0};
}

static void id_list_add(struct id_list *list, char *id) {
    if (list->count == list->capacity) {
        list->capacity = list->capacity ? list->capacity * 2 : 4096;
        list->ids = xrealloc(list->ids, list->capacity * sizeof *list->ids);
    }
    list->ids[list->count++] = id;
}

void stats_record(struct stats *stats, enum rpc rpc, const struct call *call, int outcome, const char *detail) {
    int64_t now = monotonic_ns();
    stats->last_done_ns = now;
    stats->outcomes[rpc][outcome]++;
    if (outcome == OUTCOME_OK) {
        latencies_add(&stats->calls[rpc], now - call->started_ns);
        return;
    }
    char *message = stats->first_message[rpc][outcome];
    if (message[0] != '\0') return;
    if (detail == NULL && outcome == OUTCOME_TRANSPORT) {
        snprintf(message, sizeof stats->first_message[rpc][outcome], "HTTP %d, stream error %u, grpc-status %d",
                 call->http_status, call->reset_code, call->grpc_status);
    } else {
        snprintf(message, sizeof stats->first_message[rpc][outcome], "%s", detail ? detail : call->grpc_message);
    }
}

void stats_add_completed(struct stats *stats, const char *task_id) {
    size_t size = strlen(task_id) + 1;
    char *copy = xrealloc(NULL, size);
    memcpy(copy, task_id, size);
    id_list_add(&stats->completed, copy);
}

void stats_merge(struct stats *into, struct stats *from) {
    for (int rpc = 0; rpc < RPC_COUNT; rpc++) {
        for (int outcome = 0; outcome < OUTCOME_COUNT; outcome++) {
            into->outcomes[rpc][outcome] += from->outcomes[rpc][outcome];
            if (into->first_message[rpc][outcome][0] == '\0') {
                memcpy(into->first_message[rpc][outcome], from->first_message[rpc][outcome],
                       sizeof into->first_message[rpc][outcome]);
            }
        }
        latencies_merge(&into->calls[rpc], &from->calls[rpc]);
    }
    latencies_merge(&into->cycles, &from->cycles);
    into->empty_fetches += from->empty_fetches;
    for (size_t i = 0; i < from->completed.count; i++) id_list_add(&into->completed, from->completed.ids[i]);
    free(from->completed.ids);
    from->completed = (struct id_list){0};
    if (from->last_done_ns > into->last_done_ns) into->last_done_ns = from->last_done_ns;
}

uint64_t stats_errors(const struct stats *stats) {
    uint64_t errors = 0;
    for (int rpc = 0; rpc < RPC_COUNT; rpc++) {
        for (int outcome = OUTCOME_OK + 1; outcome < OUTCOME_COUNT; outcome++) errors += stats->outcomes[rpc][outcome];
    }
    return errors;
}

void stats_print_errors(const struct stats *stats, FILE *out) {
    for (int rpc = 0; rpc < RPC_COUNT; rpc++) {
        for (int outcome = OUTCOME_OK + 1; outcome < OUTCOME_COUNT; outcome++) {
            uint64_t count = stats->outcomes[rpc][outcome];
            if (count == 0) continue;
            fprintf(out, "  %-24s %-20s x%llu  (first: %s)\n", rpc_name(rpc), outcome_name(outcome),
                    (unsigned long long)count, stats->first_message[rpc][outcome]);
        }
    }
}

static int compare_ids(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

size_t stats_report_duplicates(struct stats *stats, FILE *out) {
    struct id_list *list = &stats->completed;
    qsort(list->ids, list->count, sizeof *list->ids, compare_ids);
    size_t duplicated = 0;
    for (size_t i = 0; i < list->count;) {
        size_t same = 1;
        while (i + same < list->count && strcmp(list->ids[i], list->ids[i + same]) == 0) same++;
        if (same > 1) {
            duplicated++;
            fprintf(out, "ERROR: task %s was acknowledged COMPLETED %zu times\n", list->ids[i], same);
        }
        i += same;
    }
    return duplicated;
}

void stats_free(struct stats *stats) {
    for (int rpc = 0; rpc < RPC_COUNT; rpc++) free(stats->calls[rpc].micros);
    free(stats->cycles.micros);
    for (size_t i = 0; i < stats->completed.count; i++) free(stats->completed.ids[i]);
    free(stats->completed.ids);
}
