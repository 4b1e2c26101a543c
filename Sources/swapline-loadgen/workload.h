// The work a run does: agents that create tasks, or consumers that run full task cycles.
#ifndef SWAPLINE_LOADGEN_WORKLOAD_H
#define SWAPLINE_LOADGEN_WORKLOAD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "grpc_client.h"
#include "stats.h"

enum mode { MODE_CREATE, MODE_CYCLE };

// Fixed before the threads start; read-only afterwards.
struct run_config {
    enum mode mode;
    uint64_t limit;       // tasks or cycles to start; 0: as many as fit before the deadline
    int64_t deadline_ns;  // nothing new starts after it (INT64_MAX with a limit)
    int32_t wait_ms;      // FetchTask long-poll
};

// Shared by all threads.
struct run_state {
    atomic_uint_fast64_t started;   // tasks or cycles begun (only counted with a limit)
    atomic_uint_fast64_t finished;  // tasks created or cycles completed, for progress lines
    atomic_uint_fast64_t calls;     // calls finished in any way, for the stall check
    atomic_bool stopping;           // SIGINT/SIGTERM: start nothing new, finish what is open
    atomic_bool aborted;            // a connection failed or the run stalled: stop at once
};

extern struct run_config run_config;
extern struct run_state run_state;

// One thread's share of the run: its connections (in `loop`) and what it measured.
struct worker {
    struct event_loop loop;
    struct stats stats;
    size_t active_agents;
    bool failed;
};

// One creator slot (create mode) or one consumer (cycle mode): at most one call in flight.
struct agent {
    struct call call;  // first, so that the call's `done` can find its agent
    struct worker *worker;
    struct connection *connection;
    enum rpc step;
    int64_t cycle_started_ns;
    char consumer_id[32];
    char task_id[128];
    char lease_id[128];
};

void agent_init(struct agent *agent, struct worker *worker, struct connection *connection, unsigned index);
// Starts the agent's first task or cycle (or retires it at once when there is nothing to do).
void agent_begin(struct agent *agent);
void agent_free(struct agent *agent);

#endif
