/*
 * zdmd.c — the proxy daemon: command line, configuration, signals.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <llhttp.h>
#include <openssl/crypto.h>
#include <yaml.h>

#include "control/control.h"
#include "control/runtime.h"
#include "core/config.h"
#include "core/evmem.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/resource.h"
#include "http1/http.h"
#include "net/tls.h"
#include "obs/admin.h"
#include "proxy/accesslog.h"
#include "proxy/snapshot.h"
#include "proxy/workers.h"

#ifndef ZDM_DEFAULT_CONFIG
#define ZDM_DEFAULT_CONFIG "/etc/zdm/zdm.yaml"
#endif

struct daemon {
	const char *config_path;
	struct runtime *rt;
	struct event_base *base;      /* the control plane's loop */
	struct control *ctl;
	struct admin *admin;
	struct accesslog *alog;
	char *alog_path;              /* what alog was opened with */
	bool alog_json;
	char *admin_addr;             /* what admin listens on */
	struct event *sig_usr1;
	struct event *sig_term, *sig_int, *sig_hup;
	int stop_signals;
};

static void usage(FILE *f)
{
	fprintf(f, "usage: zdmd [-c FILE] [-t] [-V] [-h]\n"
	           "  -c FILE  configuration file (default: %s)\n"
	           "  -t       check the configuration and exit\n"
	           "  -V       print the version of zdmd and of its libraries\n"
	           "  -h       this help\n",
	           ZDM_DEFAULT_CONFIG);
}

static void print_versions(void)
{
	printf("zdmd %s\n", ZDM_VERSION);
	printf("libevent %s\n", event_get_version());
	printf("%s\n", OpenSSL_version(OPENSSL_VERSION));
	printf("llhttp %d.%d.%d\n", LLHTTP_VERSION_MAJOR, LLHTTP_VERSION_MINOR,
	       LLHTTP_VERSION_PATCH);
	printf("libyaml %s\n", yaml_get_version_string());
}

/* Loads path, printing every error and warning; NULL if there was any
 * error. */
static struct config *load_config(const char *path)
{
	struct config_errors errs = {0};
	struct config *cfg = config_load(path, &errs);
	for (size_t i = 0; i < errs.n; i++)
		fprintf(stderr, "%s\n", errs.msgs[i]);
	for (size_t i = 0; cfg && i < cfg->nwarnings; i++)
		fprintf(stderr, "%s\n", cfg->warnings[i]);
	config_errors_free(&errs);
	return cfg;
}

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	(void)what;
	if (d->stop_signals++) {
		log_info("signal %d again: exiting now", (int)sig);
		workers_stop(d->rt->ws);
		return;
	}
	log_info("signal %d: shutting down gracefully (at most %ums)", (int)sig,
	         d->rt->cfg->timeouts.drain_ms);
	workers_drain(d->rt->ws);
}

/* The access log, admin listener, log level and descriptor limit the
 * config asks for: opened at start, reopened after a reload that changed
 * them. */
static int apply_outputs(struct daemon *d)
{
	const struct config *cfg = d->rt->cfg;
	int rc = 0;

	log_set_level((enum log_level)cfg->log_level);
	resource_raise_nofile(cfg->limits.max_connections);

	const char *path = cfg->access_log;
	if ((path == NULL) != (d->alog_path == NULL) ||
	    (path && (strcmp(path, d->alog_path) || cfg->access_log_json != d->alog_json))) {
		struct accesslog *old = d->alog;
		d->alog = NULL;
		free(d->alog_path);
		d->alog_path = NULL;
		if (path) {
			d->alog = accesslog_open(path, cfg->access_log_json);
			if (d->alog) {
				d->alog_path = xstrdup(path);
				d->alog_json = cfg->access_log_json;
			} else {
				rc = -1;
			}
		}
		/* The workers let go of the old log before it closes. */
		workers_set_accesslog(d->rt->ws, d->alog);
		accesslog_close(old);
	}

	const char *admin = cfg->admin ? cfg->admin->text : NULL;
	if ((admin == NULL) != (d->admin_addr == NULL) || (admin && strcmp(admin, d->admin_addr))) {
		admin_close(d->admin);
		d->admin = NULL;
		free(d->admin_addr);
		d->admin_addr = NULL;
		if (admin) {
			d->admin = admin_open(d->base, cfg->admin, d->rt, d->rt->ws);
			if (d->admin)
				d->admin_addr = xstrdup(admin);
			else
				rc = -1;
		}
	}
	admin_set_accesslog(d->admin, d->alog);
	return rc;
}

static void on_reloaded(void *arg)
{
	apply_outputs(arg);
}

static void on_usr1(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	(void)sig;
	(void)what;
	accesslog_reopen(d->alog);
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	(void)sig;
	(void)what;
	struct config_errors errs = {0};
	runtime_lock(d->rt);
	int rc = runtime_reload(d->rt, &errs);
	runtime_unlock(d->rt);
	if (rc < 0) {
		for (size_t i = 0; i < errs.n; i++)
			log_error("%s", errs.msgs[i]);
		log_error("reload of %s failed: keeping the running configuration",
		          d->config_path);
	} else {
		log_info("reloaded %s (SIGHUP): %zu pools, %zu listeners", d->config_path,
		         d->rt->cfg->npools, d->rt->cfg->nlisten);
	}
	config_errors_free(&errs);
}

int main(int argc, char **argv)
{
	struct daemon d = {.config_path = ZDM_DEFAULT_CONFIG};
	bool check_only = false;
	int opt;

	while ((opt = getopt(argc, argv, "c:tVh")) != -1) {
		switch (opt) {
		case 'c':
			d.config_path = optarg;
			break;
		case 't':
			check_only = true;
			break;
		case 'V':
			print_versions();
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "zdmd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}

	evmem_install();
	struct config *cfg = load_config(d.config_path);
	if (!cfg)
		return 1;
	/* Certificates and keys are loaded as part of checking the config:
	 * one that does not load is an error with its position. */
	struct config_errors tls_errs = {0};
	struct tls_set *tls = tls_set_new(cfg, &tls_errs);
	for (size_t i = 0; i < tls_errs.n; i++)
		fprintf(stderr, "%s\n", tls_errs.msgs[i]);
	config_errors_free(&tls_errs);
	if (!tls) {
		config_release(cfg);
		return 1;
	}
	if (check_only) {
		printf("configuration OK\n");
		tls_set_release(tls);
		config_release(cfg);
		return 0;
	}

	/* The stop and reload signals wait until their handlers exist: one
	 * that arrives while the listeners open is handled, not fatal. */
	sigset_t sigs, old;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGUSR1);
	sigprocmask(SIG_BLOCK, &sigs, &old);
	signal(SIGPIPE, SIG_IGN);
	http_init();
	/* The control loop is woken by the workers from their threads. */
	evthread_use_pthreads();
	d.base = event_base_new();
	if (!d.base) {
		log_error("cannot create an event loop");
		return 1;
	}
	unsigned nworkers = workers_wanted(cfg->workers);
	d.rt = runtime_new(cfg, tls, d.config_path, nworkers);
	config_release(cfg);
	d.rt->on_reload = on_reloaded;
	d.rt->on_reload_arg = &d;
	if (runtime_start(d.rt, d.base) < 0 || control_open(d.base, d.rt, &d.ctl) < 0 ||
	    apply_outputs(&d) < 0) {
		control_close(d.ctl);
		admin_close(d.admin);
		if (d.rt->ws)
			workers_stop(d.rt->ws);
		runtime_free(d.rt); /* waits for the workers to end */
		accesslog_close(d.alog);
		event_base_free(d.base);
		return 1;
	}
	d.sig_term = evsignal_new(d.base, SIGTERM, on_stop_signal, &d);
	d.sig_int = evsignal_new(d.base, SIGINT, on_stop_signal, &d);
	d.sig_hup = evsignal_new(d.base, SIGHUP, on_hup, &d);
	d.sig_usr1 = evsignal_new(d.base, SIGUSR1, on_usr1, &d);
	event_add(d.sig_usr1, NULL);
	event_add(d.sig_term, NULL);
	event_add(d.sig_int, NULL);
	event_add(d.sig_hup, NULL);
	sigprocmask(SIG_SETMASK, &old, NULL);

	log_info("zdmd %s: listening on %s%s, %zu pools, %u worker%s", ZDM_VERSION,
	         d.rt->cfg->listen[0].addr.text, d.rt->cfg->nlisten > 1 ? " and more" : "",
	         d.rt->cfg->npools, nworkers, nworkers == 1 ? "" : "s");
	/* The control loop runs until the last worker has ended. */
	event_base_dispatch(d.base);
	log_info("zdmd: stopped");

	event_free(d.sig_term);
	event_free(d.sig_int);
	event_free(d.sig_hup);
	event_free(d.sig_usr1);
	control_close(d.ctl);
	admin_close(d.admin);
	runtime_free(d.rt); /* joins the workers: their log lines are handed over */
	accesslog_close(d.alog);
	free(d.alog_path);
	free(d.admin_addr);
	event_base_free(d.base);
	return 0;
}
