/* coordinator/metrics.c: the Prometheus text of metrics.h, written with open_memstream so the
 * hook can print its own lines with fprintf. */
#include "coordinator/metrics.h"

#include <stdio.h>
#include <stdlib.h>

#include "coordinator/openai_internal.h"

static void metric(FILE *f, const char *name, const char *type, const char *help, double v)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, v);
}

static void engine_metrics(FILE *f, const struct engine_stats *st)
{
    metric(f, "moepool_requests_total", "counter", "Completion requests accepted.",
           (double)st->requests);
    metric(f, "moepool_requests_rejected_total", "counter",
           "Completion requests refused (queue full, prompt too long).", (double)st->rejected);
    metric(f, "moepool_requests_finished_total", "counter", "Requests finished or canceled.",
           (double)st->finished);
    metric(f, "moepool_requests_failed_total", "counter",
           "Requests ended by an expert-backend or forward-pass error.", (double)st->errors);
    metric(f, "moepool_prompt_tokens_total", "counter", "Prompt tokens accepted.",
           (double)st->prompt_tokens);
    metric(f, "moepool_generation_tokens_total", "counter", "Tokens generated.",
           (double)st->gen_tokens);
    metric(f, "moepool_steps_total", "counter", "Engine steps (forward passes).",
           (double)st->steps);
    metric(f, "moepool_queue_depth", "gauge", "Requests waiting for a slot.", st->queued);
    metric(f, "moepool_active_slots", "gauge", "Sequences being generated.", st->active);
    metric(f, "moepool_batch_tokens", "gauge", "Tokens in the last engine step.", st->last_batch);
    metric(f, "moepool_generation_tokens_per_second", "gauge",
           "Generated tokens per second over the last second of steps.", st->gen_tok_per_s);
    fprintf(f,
            "# HELP moepool_time_to_first_token_seconds Submit to first generated token.\n"
            "# TYPE moepool_time_to_first_token_seconds summary\n"
            "moepool_time_to_first_token_seconds_sum %.17g\n"
            "moepool_time_to_first_token_seconds_count %llu\n",
            st->ttft_sum_s, (unsigned long long)st->ttft_count);
}

static void http_metrics(FILE *f, struct openai_server *s)
{
    static const char *const codes[] = {"2xx", "400", "401", "404", "503", "other"};
    fprintf(f, "# HELP moepool_http_responses_total HTTP replies by status.\n"
               "# TYPE moepool_http_responses_total counter\n");
    for (int i = 0; i < 6; i++)
        fprintf(f, "moepool_http_responses_total{code=\"%s\"} %lu\n", codes[i],
                (unsigned long)atomic_load(&s->http_status[i]));
}

void metrics_reply(struct openai_server *s, struct http_reply *out)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    struct engine_stats st;
    out->content_type = "text/plain; version=0.0.4";
    if (!f) {
        out->status = 500;
        out->body = (char *)"out of memory\n";
        out->body_len = 14;
        out->body_static = true;
        return;
    }
    engine_get_stats(s->cfg.engine, &st);
    engine_metrics(f, &st);
    http_metrics(f, s);
    if (s->cfg.metrics_extra)
        s->cfg.metrics_extra(s->cfg.metrics_ctx, f);
    fclose(f);
    out->status = 200;
    out->body = text;
    out->body_len = len;
}
