/*
 * test_rollout.c — the rollout state machine (src/rollout/rollout.c),
 * driven by hand-made analyses on a clock of its own: steps and holds,
 * promotion, rollback after `failures` failing analyses, pause, alert,
 * inconclusive, the operator's commands, blue-green.
 */
#include <string.h>

#include "rollout/rollout.h"
#include "tap.h"

static const struct rollout_step STEPS[] = {
        {500, 30000}, {1000, 30000}, {2500, 30000}, {5000, 30000}, {10000, 30000},
};
static const struct analysis_check CHECKS[] = {
        {AM_ERROR_RATE, 0.05, AA_ROLLBACK},
        {AM_P95_VS_BASELINE, 2, AA_PAUSE},
        {AM_P99, 2000, AA_ALERT},
};
static const struct rollout_spec SPEC = {
        .steps = STEPS,
        .nsteps = 5,
        .interval_ms = 10000,
        .window_ms = 60000,
        .min_requests = 100,
        .failures = 2,
        .max_inconclusive_ms = 60000,
        .checks = CHECKS,
        .nchecks = 3,
};

static struct analysis_outcome OUT[3];

/* Outcomes: each check passes, but those named fail (bit i: check i). */
static enum analysis_result judge(unsigned failing, bool inconclusive)
{
	for (int i = 0; i < 3; i++) {
		OUT[i].result = failing & (1u << i) ? AR_FAIL : inconclusive ? AR_INCONCLUSIVE : AR_PASS;
		OUT[i].value = failing & (1u << i) ? 0.2 : 0.01;
		OUT[i].p = 1;
	}
	return failing ? AR_FAIL : inconclusive ? AR_INCONCLUSIVE : AR_PASS;
}

/* Runs the analyses due from *now up to until (every interval), with the
 * given outcome; returns the last event's kind (RE_NONE for none). */
static enum rollout_event_kind run_until(struct rollout *r, uint64_t *now, uint64_t until,
                                         unsigned failing, bool inconclusive,
                                         struct rollout_event *last)
{
	enum rollout_event_kind k = RE_NONE;
	uint64_t from;
	for (; *now <= until; *now += 1000) {
		if (!rollout_analysis_due(r, &SPEC, *now, &from))
			continue;
		struct rollout_event ev[2];
		enum analysis_result v = judge(failing, inconclusive);
		int n = rollout_analysed(r, &SPEC, *now, v, OUT, ev);
		if (n) {
			k = ev[n - 1].kind;
			if (last)
				*last = ev[n - 1];
			if (k == RE_ROLLED_BACK || k == RE_PAUSED || k == RE_PROMOTED)
				return k;
		}
	}
	return k;
}

int main(void)
{
	struct rollout r;
	struct rollout_event ev, evs[2];
	char err[128];
	uint64_t now = 1000000, from;

	/* A healthy rollout goes through every step to promoted. */
	memset(&r, 0, sizeof(r));
	CHECK_EQ_INT(rollout_percent(&r, &SPEC), -1, "idle: no percentage asked");
	CHECK_EQ_INT(rollout_start(&r, &SPEC, now, &ev, err, sizeof(err)), 0, "start");
	CHECK(ev.kind == RE_STARTED && ev.set_percent && ev.percent == 500, "started: the pool at 5%");
	CHECK_EQ_INT(rollout_start(&r, &SPEC, now, &ev, err, sizeof(err)), -1,
	             "a second start is refused while one runs");
	CHECK(!rollout_analysis_due(&r, &SPEC, now + 9999, &from), "no analysis before interval");
	CHECK(rollout_analysis_due(&r, &SPEC, now + 10000, &from) && from == now,
	      "the first one at interval, its window from the start (nothing before counts)");
	uint64_t t0 = now;
	uint32_t seen[8];
	size_t nseen = 0;
	for (int guard = 0; guard < 1000 && r.state == RS_RUNNING; guard++) {
		now += 1000;
		if (!rollout_analysis_due(&r, &SPEC, now, &from))
			continue;
		int n = rollout_analysed(&r, &SPEC, now, judge(0, false), OUT, evs);
		for (int i = 0; i < n; i++)
			if (evs[i].set_percent && nseen < 8)
				seen[nseen++] = evs[i].percent;
	}
	CHECK_EQ_INT(r.state, RS_PROMOTED, "every step held: promoted");
	CHECK(nseen == 5 && seen[0] == 1000 && seen[1] == 2500 && seen[2] == 5000 &&
	              seen[3] == 10000 && seen[4] == 10000,
	      "through 10, 25, 50 and 100, then promoted (at 100)");
	CHECK_EQ_INT(now - t0, 5 * 30000, "each step held 30 s (analyses every 10 s)");
	CHECK_EQ_INT(rollout_percent(&r, &SPEC), 10000, "promoted: 100%");
	CHECK_EQ_INT(rollout_abort(&r, NULL, &ev, err, sizeof(err)), -1, "abort after promotion: refused");

	/* A failing pool: rolled back after `failures` analyses in a row. */
	memset(&r, 0, sizeof(r));
	now = 2000000;
	rollout_start(&r, &SPEC, now, &ev, err, sizeof(err));
	run_until(&r, &now, now + 35000, 0, false, NULL); /* to step 2 (10%) */
	CHECK_EQ_INT(r.step, 1, "at the second step");
	uint64_t first_fail = now;
	CHECK_EQ_INT(run_until(&r, &now, now + 60000, 1, false, &ev), RE_ROLLED_BACK,
	             "error_rate failing: rolled back");
	CHECK(ev.set_percent && ev.percent == 0, "the pool to 0% at once");
	CHECK(now - first_fail <= 2 * SPEC.interval_ms,
	      "within interval x failures of the first failure");
	CHECK(strstr(r.reason, "error_rate 20.00% over max 5.00%") &&
	              strstr(r.reason, "2 analyses in a row"),
	      "the reason names the check, the value and the threshold");
	CHECK_EQ_INT(rollout_percent(&r, &SPEC), 0, "rolled back: 0%");
	CHECK(!rollout_analysis_due(&r, &SPEC, now + 60000, &from), "no analysis once rolled back");
	CHECK_EQ_INT(rollout_start(&r, &SPEC, now, &ev, err, sizeof(err)), 0,
	             "a new start after a rollback is taken");

	/* One failing analysis is not two: no action, but the hold starts
	 * again from it. */
	memset(&r, 0, sizeof(r));
	now = 3000000;
	rollout_start(&r, &SPEC, now, &ev, err, sizeof(err));
	run_until(&r, &now, now + 20000, 0, false, NULL);
	CHECK(rollout_analysed(&r, &SPEC, now, judge(1, false), OUT, evs) == 0 && r.state == RS_RUNNING,
	      "one failing analysis (failures 2): still running");
	uint64_t failed_at = now;
	CHECK_EQ_INT(rollout_next_step_at(&r, &SPEC), failed_at + 30000,
	             "the next step is a whole hold after the failure");
	CHECK_EQ_INT(rollout_next(&r, &SPEC, now, &ev, err, sizeof(err)), -1,
	             "next is refused while the last analysis failed");
	now += 10000;
	rollout_analysed(&r, &SPEC, now, judge(0, false), OUT, evs);
	CHECK_EQ_INT(r.fails[0], 0, "a passing analysis resets the count");
	CHECK_EQ_INT(run_until(&r, &now, failed_at + 30000, 0, false, &ev), RE_STEP,
	             "and the step advances a hold after the failure");
	CHECK_EQ_INT(r.step, 1, "to the second step");

	/* Pause (latency against the baseline), and a rollback while paused. */
	CHECK_EQ_INT(run_until(&r, &now, now + 60000, 2, false, &ev), RE_PAUSED,
	             "p95_vs_baseline failing: paused");
	CHECK(strstr(r.reason, "p95_vs_baseline") != NULL, "with the check as reason");
	CHECK_EQ_INT(rollout_percent(&r, &SPEC), 1000, "paused: the pool stays at its step");
	CHECK_EQ_INT(run_until(&r, &now, now + 60000, 2, false, &ev), RE_NONE,
	             "paused: no step however long");
	CHECK_EQ_INT(run_until(&r, &now, now + 60000, 1, false, &ev), RE_ROLLED_BACK,
	             "paused, and error_rate failing: rolled back all the same");

	/* Resume restarts the hold. */
	memset(&r, 0, sizeof(r));
	now = 4000000;
	rollout_start(&r, &SPEC, now, &ev, err, sizeof(err));
	CHECK_EQ_INT(rollout_resume(&r, &SPEC, now, &ev, err, sizeof(err)), -1, "resume while running: refused");
	CHECK_EQ_INT(rollout_pause(&r, "paused by operator", &ev, err, sizeof(err)), 0, "pause");
	CHECK(ev.kind == RE_PAUSED && !ev.set_percent && !strcmp(ev.reason, "paused by operator"),
	      "paused by operator: no percentage change");
	CHECK_EQ_INT(rollout_pause(&r, "again", &ev, err, sizeof(err)), -1, "pause twice: refused");
	now += 100000;
	CHECK_EQ_INT(rollout_resume(&r, &SPEC, now, &ev, err, sizeof(err)), 0, "resume");
	CHECK(ev.kind == RE_RESUMED && r.state == RS_RUNNING && r.reason[0] == '\0',
	      "resumed: running, no reason");
	CHECK_EQ_INT(rollout_next_step_at(&r, &SPEC), now + 30000, "the hold starts again at resume");
	CHECK_EQ_INT(rollout_next(&r, &SPEC, now, &ev, err, sizeof(err)), 0, "next");
	CHECK(ev.kind == RE_STEP && ev.percent == 1000, "next: the second step at once");
	CHECK_EQ_INT(rollout_pause(&r, "x", &ev, err, sizeof(err)), 0, "paused again");
	CHECK_EQ_INT(rollout_abort(&r, NULL, &ev, err, sizeof(err)), 0, "abort while paused");
	CHECK(ev.kind == RE_ROLLED_BACK && ev.set_percent && ev.percent == 0 &&
	              !strcmp(r.reason, "aborted by operator"),
	      "abort: rolled back to 0%, \"aborted by operator\"");

	/* A pause and a resume between two failing analyses do not delay
	 * the rollback: the rollback check keeps its count. */
	memset(&r, 0, sizeof(r));
	now = 4500000;
	rollout_start(&r, &SPEC, now, &ev, err, sizeof(err));
	now += 10000;
	rollout_analysed(&r, &SPEC, now, judge(1, false), OUT, evs);
	rollout_pause(&r, "paused by operator", &ev, err, sizeof(err));
	rollout_resume(&r, &SPEC, now, &ev, err, sizeof(err));
	CHECK_EQ_INT(r.fails[0], 1, "resume keeps a rollback check's count");
	now += 10000;
	CHECK(rollout_analysed(&r, &SPEC, now, judge(1, false), OUT, evs) == 1 &&
	              evs[0].kind == RE_ROLLED_BACK,
	      "the second failing analysis rolls back, resume or not");
	memset(&r, 0, sizeof(r));
	rollout_start(&r, &SPEC, now, &ev, err, sizeof(err));
	now += 10000;
	rollout_analysed(&r, &SPEC, now, judge(2, false), OUT, evs);
	rollout_pause(&r, "paused by operator", &ev, err, sizeof(err));
	rollout_resume(&r, &SPEC, now, &ev, err, sizeof(err));
	CHECK_EQ_INT(r.fails[1], 0, "a pausing check counts again from 0 after a resume");

	/* No traffic: inconclusive, never a step; paused after
	 * max_inconclusive. */
	memset(&r, 0, sizeof(r));
	now = 5000000;
	rollout_start(&r, &SPEC, now, &ev, err, sizeof(err));
	uint64_t start = now;
	CHECK_EQ_INT(run_until(&r, &now, now + 300000, 0, true, &ev), RE_PAUSED,
	             "inconclusive: paused");
	CHECK_EQ_INT(r.step, 0, "never advanced");
	CHECK(now - start >= 60000 && now - start <= 70000 + SPEC.interval_ms,
	      "after max_inconclusive (60 s) of inconclusive analyses");
	CHECK(strstr(r.reason, "inconclusive") != NULL, "the reason says inconclusive");

	/* Alert: said, and the rollout goes on. */
	memset(&r, 0, sizeof(r));
	now = 6000000;
	rollout_start(&r, &SPEC, now, &ev, err, sizeof(err));
	now += 10000;
	CHECK_EQ_INT(rollout_analysed(&r, &SPEC, now, judge(4, false), OUT, evs), 0, "one p99 failure");
	now += 10000;
	CHECK(rollout_analysed(&r, &SPEC, now, judge(4, false), OUT, evs) == 1 &&
	              evs[0].kind == RE_ALERT && r.state == RS_RUNNING,
	      "the second: an alert, still running");
	CHECK(strstr(evs[0].reason, "p99 0.2 ms over max 2000.0 ms") != NULL,
	      "the alert names the check");
	CHECK_EQ_STR(r.reason, "", "an alert is not a transition: the rollout's reason stays");
	/* Alerts only: the rollout goes on, through its steps. */
	CHECK_EQ_INT(run_until(&r, &now, now + 40000, 4, false, &ev), RE_STEP,
	             "a failing alert check does not hold the step");
	CHECK_EQ_INT(rollout_next(&r, &SPEC, now, &ev, err, sizeof(err)), 0,
	             "nor refuse next");

	/* An alert and a pause asked by one analysis: each its own reason. */
	static const struct analysis_check AP[] = {{AM_P99, 2000, AA_ALERT},
	                                           {AM_ERROR_RATE, 0.05, AA_PAUSE}};
	struct rollout_spec ap = SPEC;
	ap.checks = AP;
	ap.nchecks = 2;
	memset(&r, 0, sizeof(r));
	now = 6500000;
	rollout_start(&r, &ap, now, &ev, err, sizeof(err));
	int n = 0;
	for (int k = 0; k < 2; k++) {
		now += 10000;
		n = rollout_analysed(&r, &ap, now, judge(3, false), OUT, evs);
	}
	CHECK(n == 2 && evs[0].kind == RE_ALERT && evs[1].kind == RE_PAUSED,
	      "alert and pause in one analysis: both events, alert first");
	CHECK(strstr(evs[0].reason, "p99") && strstr(evs[1].reason, "error_rate") &&
	              !strstr(evs[0].reason, "error_rate"),
	      "each with its own reason");

	/* Rollback first: a rollback and a pause asked by one analysis. */
	memset(&r, 0, sizeof(r));
	now = 7000000;
	rollout_start(&r, &SPEC, now, &ev, err, sizeof(err));
	CHECK_EQ_INT(run_until(&r, &now, now + 60000, 3, false, &ev), RE_ROLLED_BACK,
	             "error_rate and p95_vs_baseline failing together: rolled back, not paused");

	/* Blue-green: one step at 100% with a hold. */
	static const struct rollout_step BG[] = {{10000, 60000}};
	struct rollout_spec bg = SPEC;
	bg.steps = BG;
	bg.nsteps = 1;
	memset(&r, 0, sizeof(r));
	now = 8000000;
	rollout_start(&r, &bg, now, &ev, err, sizeof(err));
	CHECK(ev.percent == 10000, "blue-green: the new pool at 100% at once");
	start = now;
	for (int guard = 0; guard < 100 && r.state == RS_RUNNING; guard++) {
		now += 10000;
		rollout_analysed(&r, &bg, now, judge(0, false), OUT, evs);
	}
	CHECK(r.state == RS_PROMOTED && now - start == 60000, "promoted after its 60 s hold");
	memset(&r, 0, sizeof(r));
	rollout_start(&r, &bg, now, &ev, err, sizeof(err));
	now += 10000;
	rollout_analysed(&r, &bg, now, judge(1, false), OUT, evs);
	now += 10000;
	CHECK(rollout_analysed(&r, &bg, now, judge(1, false), OUT, evs) == 1 &&
	              evs[0].kind == RE_ROLLED_BACK && evs[0].percent == 0,
	      "failing during the hold: rolled back to the old pool");

	CHECK_EQ_STR(rollout_state_names[RS_ROLLED_BACK], "rolled_back", "state names");
	return tap_done();
}
