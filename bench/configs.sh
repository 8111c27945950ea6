# Configuration generators shared by bench/run.sh and bench/slowread.sh:
# the upstream nginx, and zdmd, HAProxy and NGINX as the proxies under test,
# each written to stdout. Sourced, not run. They read these variables of the
# sourcing script: HOST, PORT_OLD, PORT_NEW, WORK (the temporary directory:
# upstream files in $WORK/upstream/www), RAW (error logs), TLS_DIR, MODE
# (tls adds TLS listeners), PORT and TLS_PORT (arrays by proxy name),
# ADMIN_PORT (zdmd+obs), HAPROXY_SPLICE.
# shellcheck shell=bash

temp_paths() { # nginx temp directories inside DIR
	local d=$1
	cat <<EOF
    client_body_temp_path $d/client_body;
    proxy_temp_path       $d/proxy;
    fastcgi_temp_path     $d/fastcgi;
    uwsgi_temp_path       $d/uwsgi;
    scgi_temp_path        $d/scgi;
EOF
}

upstream_server() { # upstream_server PORT POOL
	cat <<EOF
    server {
        listen $HOST:$1 backlog=4096;
        root $WORK/upstream/www;
        location = /tiny {
            default_type text/plain;
            add_header X-Pool $2;
            return 200 "hello world!\n";
        }
        # Uploads: the whole body is read (into memory, by the mirror
        # subrequest) before the answer, "ok\n" from the file "upload"
        # (POST to a file is a 405, turned into a 200 with the file). With
        # "return" nginx would answer at once and discard the body after,
        # which ends every keep-alive connection through a proxy.
        location = /upload {
            client_max_body_size 0;
            client_body_buffer_size 2m;
            mirror /read-body;
            error_page 405 =200 /upload;
            default_type text/plain;
            add_header X-Pool $2;
        }
        location = /read-body { internal; return 204; }
        location / {
            default_type application/octet-stream;
            add_header X-Pool $2;
        }
    }
EOF
}

# upstream_config: the nginx.conf of the upstream servers on stdout (pool "old"
# on PORT_OLD, pool "new" on PORT_NEW, files from $WORK/upstream/www).
upstream_config() {
	cat <<EOF
# Upstream servers for the benchmark: pool "old" on $PORT_OLD, pool "new" on $PORT_NEW.
daemon off;
worker_processes 1;
pid $WORK/upstream/nginx.pid;
error_log $RAW/upstream.error.log warn;
worker_rlimit_nofile 65536;
events { worker_connections 8192; }
http {
    access_log off;
    server_tokens off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
$(temp_paths "$WORK/upstream/tmp")
$(upstream_server $PORT_OLD old)
$(upstream_server $PORT_NEW new)
}
EOF
}

# HAProxy: one thread, 90/10 round robin, idle server connections shared.
# Headers as zdmd adds them: X-Forwarded-For, X-Real-IP, X-Forwarded-Proto.
# haproxy_config PORT [TLS_PORT [NBTHREAD [MAXCONN]]]: the config on stdout;
# TLS_PORT empty = no TLS listener. A MAXCONN other than 4096 is also set
# in "defaults" (the frontend's limit), with "no strict-limits": HAProxy
# wants 2 x MAXCONN file descriptors and otherwise refuses to start when
# the hard limit is lower (one descriptor per idle client connection is
# all the extra mode needs).
haproxy_config() {
	local port=$1 tls_port=${2:-} threads=${3:-1} maxconn=${4:-4096} frontend_maxconn="" global_limits=""
	if [[ $maxconn != 4096 ]]; then
		frontend_maxconn="    maxconn $maxconn"$'\n'
		global_limits="    no strict-limits"$'\n'
	fi
	cat <<EOF
global
    nbthread $threads
    maxconn $maxconn
${global_limits}
defaults
    mode http
${frontend_maxconn}    option http-keep-alive
    http-reuse always
    timeout connect 2s
    timeout client 60s
    timeout server 30s
    timeout http-request 10s
    timeout http-keep-alive 60s

frontend bench
    bind $HOST:$port
$([[ -n $tls_port ]] && echo "    bind $HOST:$tls_port ssl crt $TLS_DIR/combined.pem alpn http/1.1")
    option forwardfor
    http-request set-header X-Real-IP %[src]
    http-request set-header X-Forwarded-Proto http if !{ ssl_fc }
    http-request set-header X-Forwarded-Proto https if { ssl_fc }
    default_backend pools

backend pools
    balance roundrobin
$([[ ${HAPROXY_SPLICE:-0} == 1 ]] && echo "    option splice-response")
    server old $HOST:$PORT_OLD weight 90
    server new $HOST:$PORT_NEW weight 10
EOF
}

# NGINX as a proxy: one worker, 90/10 upstream with idle keep-alive
# connections, default proxy buffering, the same forwarding headers.
# nginx_config DIR ERROR_LOG PORT [TLS_PORT [WORKERS [CONNECTIONS [RLIMIT_NOFILE [MASTER]]]]]:
# the config on stdout (pid file and temp directories in DIR); MASTER=off
# adds "master_process off" (a single process that serves, as under valgrind).
nginx_config() {
	local dir=$1 errlog=$2 port=$3 tls_port=${4:-} workers=${5:-1} conns=${6:-8192} nofile=${7:-65536} master=${8:-on}
	local master_line=""
	[[ $master == off ]] && master_line="master_process off;"$'\n'
	cat <<EOF
daemon off;
${master_line}worker_processes $workers;
pid $dir/nginx.pid;
error_log $errlog warn;
worker_rlimit_nofile $nofile;
events { worker_connections $conns; }
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
$(temp_paths "$dir/tmp")
    upstream pools {
        server $HOST:$PORT_OLD weight=90;
        server $HOST:$PORT_NEW weight=10;
        keepalive 64;
        keepalive_requests 100000000;
        keepalive_timeout 300s;
    }
    server {
        listen $HOST:$port backlog=4096;
$([[ -n $tls_port ]] && cat <<EOT
        listen $HOST:$tls_port ssl backlog=4096;
        ssl_certificate $TLS_DIR/server.pem;
        ssl_certificate_key $TLS_DIR/server.key;
        ssl_session_cache shared:SSL:10m;
        ssl_protocols TLSv1.2 TLSv1.3;
EOT
)
        # Request bodies stream to the upstream as they come, as with the
        # other proxies (NGINX would otherwise buffer each one whole).
        client_max_body_size 0;
        proxy_request_buffering off;
        location / {
            proxy_pass http://pools;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Real-IP \$remote_addr;
            proxy_set_header X-Forwarded-Proto \$scheme;
        }
    }
}
EOF
}

# zdmd_config NAME DIR [PORT [TLS_PORT [WORKERS [MAX_CONNECTIONS]]]]: the
# whole zdm.yaml on stdout: listeners, control socket in DIR, logging, pools.
# Without PORT, the ports of NAME (and in tls mode its TLS listener); NAME
# zdmd+obs adds the admin listener and a text access log in DIR. With
# ZDMD_ROUTES=N (N > 0), the split is that of the last of N routes: the
# N - 1 before it take the same host under other paths, so that a request
# is checked against every one of them before it matches. With
# ZDMD_ROLLOUT=1 (and no routes), a rollout section.
zdmd_config() {
	local name=$1 dir=$2 port=${3:-${PORT[$1]:-}} tls_port=${4:-} workers=${5:-1} maxconn=${6:-}
	[[ $# -lt 3 && $MODE == tls ]] && tls_port=${TLS_PORT[$1]:-}
	echo "listen:"
	echo "  - \"$HOST:$port\""
	if [[ -n $tls_port ]]; then
		echo "  - {address: \"$HOST:$tls_port\", tls: {cert: \"$TLS_DIR/server.pem\", key: \"$TLS_DIR/server.key\"}}"
	fi
	echo "control:"
	echo "  socket: \"$dir/zdm.sock\""
	echo "workers: $workers"
	if [[ $name == zdmd+obs ]]; then
		echo "admin: \"$HOST:$ADMIN_PORT\""
		echo "access_log: \"$dir/access.log\""
		echo "access_log_format: text"
	else
		echo "access_log: \"off\""
	fi
	[[ -n $maxconn ]] && echo "limits: {max_connections: $maxconn}"
	cat <<EOF
pools:
  old:
    servers:
      - {address: "$HOST:$PORT_OLD"}
  new:
    servers:
      - {address: "$HOST:$PORT_NEW"}
EOF
	if ((${ZDMD_ROUTES:-0} > 0)); then
		echo "routes:"
		for ((r = 1; r < ZDMD_ROUTES; r++)); do
			echo "  - {name: r$r, match: {host: [\"$HOST\", \"*.r$r.test\"], path_prefix: /r$r}, split: {new: 100}}"
		done
		echo "  - {name: main, match: {host: [\"$HOST\"], path_prefix: /}, split: {old: 90, new: 10}}"
	else
		echo "split: {old: 90, new: 10}"
		# ZDMD_ROLLOUT=1: a rollout of new whose first step is the same
		# split, analysed every second (started with zdmctl rollout start).
		if [[ -n ${ZDMD_ROLLOUT:-} ]]; then
			echo "rollout: {pool: new, steps: [10, 100], hold: 1h, interval: 1s, window: 10s}"
		fi
	fi
}
