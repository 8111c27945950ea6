-- wrk script for the "up1m" workload of bench/run.sh: every request is a
-- POST of a 1 MiB body (Content-Length), answered by the upstream with 3
-- bytes.
wrk.method = "POST"
wrk.body = string.rep("u", 1048576)
wrk.headers["Content-Type"] = "application/octet-stream"
