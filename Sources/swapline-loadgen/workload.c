#include "workload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "swapline/v1/tasks.pb-c.h"

struct run_config run_config;
struct run_state run_state;

static const char *const rpc_paths[RPC_COUNT] = {
    [RPC_CREATE_TASK] = "/swapline.v1.TaskService/CreateTask",
    [RPC_FETCH_TASK] = "/swapline.v1.ConsumerService/FetchTask",
    [RPC_UPDATE_PROCESSING] = "/swapline.v1.ConsumerService/UpdateStatus",
    [RPC_UPDATE_COMPLETED] = "/swapline.v1.ConsumerService/UpdateStatus",
};

static void on_call_done(struct call *call);

void agent_init(struct agent *agent, struct worker *worker, struct connection *connection, unsigned index) {
    memset(agent, 0, sizeof *agent);
    agent->worker = worker;
    agent->connection = connection;
    agent->call.done = on_call_done;
    snprintf(agent->consumer_id, sizeof agent->consumer_id, "loadgen-%d-%u", (int)getpid(), index);
}

void agent_free(struct agent *agent) {
    free(agent->call.request.bytes);
    free(agent->call.response.bytes);
}

static void agent_retire(struct agent *agent) { agent->worker->active_agents--; }

static void agent_send(struct agent *agent, enum rpc step, const ProtobufCMessage *message) {
    agent->step = step;
    call_encode(&agent->call, message);
    if (!call_start(&agent->call, agent->connection, rpc_paths[step])) {
        agent->worker->failed = true;
        agent_retire(agent);
    }
}

static bool past_deadline(void) { return monotonic_ns() >= run_config.deadline_ns; }

static bool may_begin(void) {
    if (atomic_load_explicit(&run_state.stopping, memory_order_relaxed)) return false;
    if (run_config.limit > 0) return atomic_fetch_add(&run_state.started, 1) < run_config.limit;
    return !past_deadline();
}

static void send_create(struct agent *agent) {
    Swapline__V1__FaceSwapParams params = SWAPLINE__V1__FACE_SWAP_PARAMS__INIT;
    params.source_url = "https://example.com/a.jpg";
    params.target_url = "https://example.com/b.jpg";
    Swapline__V1__CreateTaskRequest request = SWAPLINE__V1__CREATE_TASK_REQUEST__INIT;
    request.params = &params;
    agent_send(agent, RPC_CREATE_TASK, &request.base);
}

static void send_fetch(struct agent *agent) {
    Swapline__V1__FetchTaskRequest request = SWAPLINE__V1__FETCH_TASK_REQUEST__INIT;
    request.consumer_id = agent->consumer_id;
    request.wait_ms = run_config.wait_ms;
    agent_send(agent, RPC_FETCH_TASK, &request.base);
}

static void send_update(struct agent *agent, enum rpc step) {
    Swapline__V1__UpdateStatusRequest request = SWAPLINE__V1__UPDATE_STATUS_REQUEST__INIT;
    request.task_id = agent->task_id;
    request.lease_id = agent->lease_id;
    Swapline__V1__TaskResult result = SWAPLINE__V1__TASK_RESULT__INIT;
    char output_url[192];
    if (step == RPC_UPDATE_PROCESSING) {
        request.status = SWAPLINE__V1__TASK_STATUS__TASK_STATUS_PROCESSING;
        request.progress = 0.5f;
    } else {
        request.status = SWAPLINE__V1__TASK_STATUS__TASK_STATUS_COMPLETED;
        request.progress = 1.0f;
        snprintf(output_url, sizeof output_url, "https://example.com/outputs/%s.jpg", agent->task_id);
        result.output_url = output_url;
        request.result = &result;
    }
    agent_send(agent, step, &request.base);
}

// The next task (create mode) or cycle (cycle mode), if the run wants more.
static void agent_next(struct agent *agent) {
    if (!may_begin()) {
        agent_retire(agent);
        return;
    }
    agent->cycle_started_ns = monotonic_ns();
    send_create(agent);
}

void agent_begin(struct agent *agent) {
    agent->worker->active_agents++;
    agent_next(agent);
}

// Why a Task reply is not what the call should have produced, or NULL when it is.
static const char *check_task(const struct call *call, Swapline__V1__TaskStatus expected, const char *task_id) {
    size_t length;
    const uint8_t *message = call_message(call, &length);
    Swapline__V1__Task *task = swapline__v1__task__unpack(NULL, length, message);
    if (task == NULL) return "undecodable Task";
    const char *problem = NULL;
    if (task->task_id[0] == '\0') {
        problem = "Task without task_id";
    } else if (task_id != NULL && strcmp(task->task_id, task_id) != 0) {
        problem = "Task of another task_id than the request's";
    } else if (task->status != expected) {
        problem = "Task in another status than expected";
    }
    swapline__v1__task__free_unpacked(task, NULL);
    return problem;
}

static bool copy_id(char *into, size_t size, const char *id) {
    size_t length = strlen(id);
    if (length == 0 || length >= size) return false;
    memcpy(into, id, length + 1);
    return true;
}

enum fetch_result { FETCH_LEASED, FETCH_EMPTY, FETCH_INVALID };

// Takes the task id and lease from a FetchTaskResponse; *problem says what was wrong with it.
static enum fetch_result take_lease(struct agent *agent, const char **problem) {
    size_t length;
    const uint8_t *message = call_message(&agent->call, &length);
    Swapline__V1__FetchTaskResponse *response = swapline__v1__fetch_task_response__unpack(NULL, length, message);
    if (response == NULL) {
        *problem = "undecodable FetchTaskResponse";
        return FETCH_INVALID;
    }
    enum fetch_result result = FETCH_LEASED;
    if (response->task == NULL) {
        result = FETCH_EMPTY;
    } else if (response->task->status != SWAPLINE__V1__TASK_STATUS__TASK_STATUS_PROCESSING) {
        *problem = "fetched task is not PROCESSING";
        result = FETCH_INVALID;
    } else if (!copy_id(agent->task_id, sizeof agent->task_id, response->task->task_id)
               || !copy_id(agent->lease_id, sizeof agent->lease_id, response->lease_id)) {
        *problem = "fetched task without a usable task_id or lease_id";
        result = FETCH_INVALID;
    }
    swapline__v1__fetch_task_response__free_unpacked(response, NULL);
    return result;
}

static void on_call_done(struct call *call) {
    struct agent *agent = (struct agent *)call;
    struct worker *worker = agent->worker;
    atomic_fetch_add_explicit(&run_state.calls, 1, memory_order_relaxed);
    int outcome = call_outcome(call);
    const char *problem = NULL;
    enum fetch_result fetched = FETCH_INVALID;
    if (outcome == OUTCOME_OK) {
        switch (agent->step) {
        case RPC_CREATE_TASK:
            problem = check_task(call, SWAPLINE__V1__TASK_STATUS__TASK_STATUS_PENDING, NULL);
            break;
        case RPC_FETCH_TASK:
            fetched = take_lease(agent, &problem);
            break;
        case RPC_UPDATE_PROCESSING:
            problem = check_task(call, SWAPLINE__V1__TASK_STATUS__TASK_STATUS_PROCESSING, agent->task_id);
            break;
        case RPC_UPDATE_COMPLETED:
            problem = check_task(call, SWAPLINE__V1__TASK_STATUS__TASK_STATUS_COMPLETED, agent->task_id);
            break;
        case RPC_COUNT:
            abort();
        }
        if (problem != NULL) outcome = OUTCOME_BAD_RESPONSE;
    }
    stats_record(&worker->stats, agent->step, call, outcome, problem);

    if (outcome != OUTCOME_OK) {
        // A failed step abandons the cycle; a lease it held expires on the server.
        agent_next(agent);
        return;
    }
    switch (agent->step) {
    case RPC_CREATE_TASK:
        if (run_config.mode == MODE_CYCLE) {
            send_fetch(agent);
        } else {
            atomic_fetch_add_explicit(&run_state.finished, 1, memory_order_relaxed);
            agent_next(agent);
        }
        break;
    case RPC_FETCH_TASK:
        if (fetched == FETCH_LEASED) {
            send_update(agent, RPC_UPDATE_PROCESSING);
            break;
        }
        worker->stats.empty_fetches++;
        // With a limit the started cycle must still finish; with a deadline it may end here.
        if (atomic_load_explicit(&run_state.stopping, memory_order_relaxed)
            || (run_config.limit == 0 && past_deadline())) {
            agent_retire(agent);
        } else {
            send_fetch(agent);
        }
        break;
    case RPC_UPDATE_PROCESSING:
        send_update(agent, RPC_UPDATE_COMPLETED);
        break;
    case RPC_UPDATE_COMPLETED:
        latencies_add(&worker->stats.cycles, monotonic_ns() - agent->cycle_started_ns);
        stats_add_completed(&worker->stats, agent->task_id);
        atomic_fetch_add_explicit(&run_state.finished, 1, memory_order_relaxed);
        agent_next(agent);
        break;
    case RPC_COUNT:
        abort();
    }
}
