// swapline-loadgen: a gRPC load generator for Swapline's task queue.
//
// h2load cannot follow leases and sees no grpc-status; grpcio and our libcurl client are too
// slow to load a server at thousands of calls per second. This client multiplexes many unary
// calls over a few HTTP/2 connections per thread on nghttp2 and epoll, and only ever connects
// to loopback addresses.
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grpc_client.h"
#include "stats.h"
#include "workload.h"

enum { MAX_SERVERS = 16, STALL_SECONDS = 30 };

static const char usage[] =
    "usage: swapline-loadgen create [options]   create tasks as fast as the server takes them\n"
    "       swapline-loadgen cycle  [options]   consumers run create, FetchTask, PROCESSING, COMPLETED\n"
    "\n"
    "  --server HOST:PORT   server to load; repeat for several (consumers and connections are\n"
    "                       spread round-robin); loopback only [127.0.0.1:50051]\n"
    "  --connections C      HTTP/2 connections per server [4]\n"
    "  --streams S          create: concurrent calls per connection [32]\n"
    "  --consumers K        cycle: concurrent consumers, one call in flight each [64]\n"
    "  -n, --count N        tasks to create / cycles to run [create: 10000]\n"
    "  -d, --duration SECS  run for this long instead of a count [cycle: 10]\n"
    "  --wait-ms MS         cycle: FetchTask wait_ms [1000]\n"
    "  --threads T          event-loop threads, each with its share of the connections [1]\n"
    "  --progress SECS      progress line on stderr this often, 0 for none [5]\n"
    "\n"
    "Prints a summary and a final line 'RESULT mode=... key=value ...'. Exit status: 0 when\n"
    "every call succeeded, 1 when some failed or the run was aborted, 2 when a task was\n"
    "acknowledged COMPLETED more than once.\n";

struct options {
    enum mode mode;
    struct endpoint servers[MAX_SERVERS];
    unsigned server_count, connections, streams, consumers, threads;
    uint64_t count;
    double duration, progress;
    int32_t wait_ms;
};

static _Noreturn void usage_error(const char *message, const char *argument) {
    fprintf(stderr, "swapline-loadgen: %s%s%s\n\n%s", message, argument ? ": " : "", argument ? argument : "", usage);
    exit(1);
}

static unsigned long long parse_count(const char *text, const char *option, unsigned long long max) {
    char *end;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0' || value == 0 || value > max || text[0] == '-') usage_error(option, text);
    return value;
}

static double parse_seconds(const char *text, const char *option) {
    char *end;
    double value = strtod(text, &end);
    if (*end != '\0' || !(value >= 0) || value > 86400) usage_error(option, text);
    return value;
}

static void parse_options(struct options *options, int argc, char **argv) {
    *options = (struct options){
        .connections = 4, .streams = 32, .consumers = 64, .threads = 1, .progress = 5, .wait_ms = 1000,
    };
    if (argc < 2) usage_error("missing mode", NULL);
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fputs(usage, stdout);
        exit(0);
    }
    if (strcmp(argv[1], "create") == 0) {
        options->mode = MODE_CREATE;
    } else if (strcmp(argv[1], "cycle") == 0) {
        options->mode = MODE_CYCLE;
    } else {
        usage_error("unknown mode", argv[1]);
    }
    static const struct option long_options[] = {
        {"server", required_argument, NULL, 's'},   {"connections", required_argument, NULL, 'c'},
        {"streams", required_argument, NULL, 'm'},  {"consumers", required_argument, NULL, 'k'},
        {"count", required_argument, NULL, 'n'},    {"duration", required_argument, NULL, 'd'},
        {"wait-ms", required_argument, NULL, 'w'},  {"threads", required_argument, NULL, 't'},
        {"progress", required_argument, NULL, 'p'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool timed = false;
    int option;
    optind = 2;
    while ((option = getopt_long(argc, argv, "n:d:h", long_options, NULL)) != -1) {
        switch (option) {
        case 's': {
            if (options->server_count == MAX_SERVERS) usage_error("too many --server options", NULL);
            char error[160];
            if (!endpoint_parse(&options->servers[options->server_count++], optarg, error, sizeof error)) {
                usage_error("--server", error);
            }
            break;
        }
        case 'c': options->connections = (unsigned)parse_count(optarg, "--connections", 1024); break;
        case 'm': options->streams = (unsigned)parse_count(optarg, "--streams", 4096); break;
        case 'k': options->consumers = (unsigned)parse_count(optarg, "--consumers", 100000); break;
        case 'n': options->count = parse_count(optarg, "--count", UINT64_MAX / 2); break;
        case 'd':
            options->duration = parse_seconds(optarg, "--duration");
            timed = true;
            break;
        case 'w': options->wait_ms = (int32_t)parse_count(optarg, "--wait-ms", 30000); break;
        case 't': options->threads = (unsigned)parse_count(optarg, "--threads", 256); break;
        case 'p': options->progress = parse_seconds(optarg, "--progress"); break;
        case 'h':
            fputs(usage, stdout);
            exit(0);
        default: usage_error("bad option", NULL);
        }
    }
    if (optind != argc) usage_error("unexpected argument", argv[optind]);
    if (timed && options->count > 0) usage_error("give --count or --duration, not both", NULL);
    if (!timed && options->count == 0) {
        if (options->mode == MODE_CREATE) options->count = 10000;
        else options->duration = 10;
    }
    if (options->server_count == 0) {
        char error[160];
        endpoint_parse(&options->servers[options->server_count++], "127.0.0.1:50051", error, sizeof error);
    }
}

static void request_stop(int signal_number) {
    (void)signal_number;
    atomic_store(&run_state.stopping, true);
}

static atomic_uint workers_running;

static struct {
    struct worker *workers;
    struct agent *agents;
    size_t agent_count;
} run;

static void *worker_main(void *argument) {
    struct worker *worker = argument;
    for (size_t i = 0; i < run.agent_count; i++) {
        if (run.agents[i].worker == worker) agent_begin(&run.agents[i]);
    }
    while (worker->active_agents > 0 && !worker->failed && !atomic_load(&run_state.aborted)) {
        if (!event_loop_turn(&worker->loop, 100)) worker->failed = true;
    }
    if (worker->failed) atomic_store(&run_state.aborted, true);
    atomic_fetch_sub(&workers_running, 1);
    return NULL;
}

static void sleep_ms(long milliseconds) {
    struct timespec pause = {milliseconds / 1000, (milliseconds % 1000) * 1000000};
    while (nanosleep(&pause, &pause) != 0 && errno == EINTR) {}
}

// Prints progress and aborts a run in which no call has finished for STALL_SECONDS (plus the
// long-poll), so that a wedged server cannot hang a benchmark script.
static void supervise(const struct options *options, int64_t started_ns) {
    const char *unit = options->mode == MODE_CREATE ? "tasks created" : "cycles completed";
    int64_t stall_ns = (int64_t)(STALL_SECONDS * 1000 + options->wait_ms) * 1000000;
    int64_t next_progress_ns = started_ns + (int64_t)(options->progress * 1e9);
    uint64_t last_calls = 0;
    int64_t last_change_ns = started_ns;
    while (atomic_load(&workers_running) > 0) {
        sleep_ms(100);
        int64_t now = monotonic_ns();
        uint64_t calls = atomic_load(&run_state.calls);
        if (calls != last_calls) {
            last_calls = calls;
            last_change_ns = now;
        } else if (now - last_change_ns > stall_ns && !atomic_load(&run_state.aborted)) {
            fprintf(stderr, "swapline-loadgen: no call finished for %d s; aborting\n", STALL_SECONDS);
            atomic_store(&run_state.aborted, true);
        }
        if (options->progress > 0 && now >= next_progress_ns) {
            fprintf(stderr, "  %7.1f s  %llu %s\n", (double)(now - started_ns) / 1e9,
                    (unsigned long long)atomic_load(&run_state.finished), unit);
            next_progress_ns += (int64_t)(options->progress * 1e9);
        }
    }
}

static void print_calls(struct stats *stats) {
    for (int rpc = 0; rpc < RPC_COUNT; rpc++) {
        uint64_t ok = stats->outcomes[rpc][OUTCOME_OK];
        if (ok == 0) continue;
        printf("  %-24s %9llu ok   p50 %7.2f ms   p99 %7.2f ms\n", rpc_name(rpc), (unsigned long long)ok,
               latencies_percentile_ms(&stats->calls[rpc], 50), latencies_percentile_ms(&stats->calls[rpc], 99));
    }
}

// Prints the summary and the RESULT line; returns the exit status.
static int report(const struct options *options, struct stats *stats, int64_t started_ns) {
    double seconds = stats->last_done_ns > started_ns ? (double)(stats->last_done_ns - started_ns) / 1e9 : 0;
    uint64_t errors = stats_errors(stats);
    bool aborted = atomic_load(&run_state.aborted);
    size_t duplicates = 0;
    unsigned total_connections = options->server_count * options->connections;
    if (options->mode == MODE_CREATE) {
        uint64_t tasks = stats->outcomes[RPC_CREATE_TASK][OUTCOME_OK];
        double rate = seconds > 0 ? (double)tasks / seconds : 0;
        double p50 = latencies_percentile_ms(&stats->calls[RPC_CREATE_TASK], 50);
        double p99 = latencies_percentile_ms(&stats->calls[RPC_CREATE_TASK], 99);
        printf("created %llu tasks in %.2f s: %.0f tasks/s (%u server(s) x %u connections x %u streams, %u thread(s))\n",
               (unsigned long long)tasks, seconds, rate, options->server_count, options->connections, options->streams,
               options->threads);
        print_calls(stats);
        printf("errors: %llu\n", (unsigned long long)errors);
        stats_print_errors(stats, stdout);
        printf("RESULT mode=create tasks=%llu seconds=%.3f tasks_per_s=%.1f p50_ms=%.2f p99_ms=%.2f errors=%llu "
               "aborted=%d\n",
               (unsigned long long)tasks, seconds, rate, p50, p99, (unsigned long long)errors, aborted);
    } else {
        uint64_t cycles = stats->outcomes[RPC_UPDATE_COMPLETED][OUTCOME_OK];
        double rate = seconds > 0 ? (double)cycles / seconds : 0;
        double p50 = latencies_percentile_ms(&stats->cycles, 50);
        double p99 = latencies_percentile_ms(&stats->cycles, 99);
        printf("completed %llu cycles in %.2f s: %.0f cycles/s (%u consumers over %u connection(s) to %u server(s), "
               "%u thread(s))\n",
               (unsigned long long)cycles, seconds, rate, options->consumers, total_connections, options->server_count,
               options->threads);
        printf("  %-24s %9llu ok   p50 %7.2f ms   p99 %7.2f ms\n", "full cycle", (unsigned long long)cycles, p50, p99);
        print_calls(stats);
        printf("FetchTask answered with no task: %llu\n", (unsigned long long)stats->empty_fetches);
        printf("errors: %llu\n", (unsigned long long)errors);
        stats_print_errors(stats, stdout);
        fflush(stdout);
        duplicates = stats_report_duplicates(stats, stderr);
        if (duplicates > 0) {
            fprintf(stderr, "ERROR: %zu task(s) acknowledged COMPLETED more than once\n", duplicates);
        } else {
            printf("completed twice: none (%zu task ids checked)\n", stats->completed.count);
        }
        // tasks_created counts the creates of failed cycles too: what the run added to the store.
        printf("RESULT mode=cycle cycles=%llu seconds=%.3f cycles_per_s=%.1f p50_ms=%.2f p99_ms=%.2f errors=%llu "
               "empty_fetches=%llu duplicates=%zu tasks_created=%llu consumers=%u servers=%u aborted=%d\n",
               (unsigned long long)cycles, seconds, rate, p50, p99, (unsigned long long)errors,
               (unsigned long long)stats->empty_fetches, duplicates,
               (unsigned long long)stats->outcomes[RPC_CREATE_TASK][OUTCOME_OK], options->consumers,
               options->server_count, aborted);
    }
    if (duplicates > 0) return 2;
    return errors > 0 || aborted ? 1 : 0;
}

int main(int argc, char **argv) {
    struct options options;
    parse_options(&options, argc, argv);
    run_config = (struct run_config){
        .mode = options.mode,
        .limit = options.count,
        .deadline_ns = INT64_MAX,
        .wait_ms = options.wait_ms,
    };
    struct sigaction stop = {.sa_handler = request_stop, .sa_flags = SA_RESETHAND};
    sigaction(SIGINT, &stop, NULL);
    sigaction(SIGTERM, &stop, NULL);

    // Connections alternate between servers, and threads take them in turn, so that both
    // agents and threads are spread evenly over the servers.
    unsigned connection_count = options.server_count * options.connections;
    if (options.threads > connection_count) options.threads = connection_count;
    struct connection *connections = calloc(connection_count, sizeof *connections);
    run.workers = calloc(options.threads, sizeof *run.workers);
    for (unsigned t = 0; t < options.threads; t++) {
        if (!event_loop_init(&run.workers[t].loop)) return 1;
    }
    for (unsigned i = 0; i < connection_count; i++) {
        if (!connection_open(&connections[i], &options.servers[i % options.server_count])) return 1;
        if (!event_loop_add(&run.workers[i % options.threads].loop, &connections[i])) return 1;
    }
    run.agent_count = options.mode == MODE_CREATE ? (size_t)connection_count * options.streams : options.consumers;
    run.agents = calloc(run.agent_count, sizeof *run.agents);
    for (size_t i = 0; i < run.agent_count; i++) {
        size_t c = i % connection_count;
        agent_init(&run.agents[i], &run.workers[c % options.threads], &connections[c], (unsigned)i);
    }

    int64_t started_ns = monotonic_ns();
    if (options.duration > 0) run_config.deadline_ns = started_ns + (int64_t)(options.duration * 1e9);
    pthread_t *threads = calloc(options.threads, sizeof *threads);
    atomic_store(&workers_running, options.threads);
    for (unsigned t = 0; t < options.threads; t++) {
        if (pthread_create(&threads[t], NULL, worker_main, &run.workers[t]) != 0) {
            fputs("swapline-loadgen: cannot start a thread\n", stderr);
            return 1;
        }
    }
    supervise(&options, started_ns);

    struct stats total = {0};
    for (unsigned t = 0; t < options.threads; t++) {
        pthread_join(threads[t], NULL);
        stats_merge(&total, &run.workers[t].stats);
    }
    int status = report(&options, &total, started_ns);

    stats_free(&total);
    for (size_t i = 0; i < run.agent_count; i++) agent_free(&run.agents[i]);
    for (unsigned i = 0; i < connection_count; i++) connection_close(&connections[i]);
    for (unsigned t = 0; t < options.threads; t++) event_loop_close(&run.workers[t].loop);
    free(run.agents);
    free(run.workers);
    free(connections);
    free(threads);
    return status;
}
