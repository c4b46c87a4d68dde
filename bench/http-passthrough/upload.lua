-- wrk script for upload.sh: every request is a POST of a 1 MiB body to /sink (STOW-RS-sized
-- uploads), reported like report.lua.
wrk.method = "POST"
wrk.path = "/sink"
wrk.body = string.rep("abcdefghijklmnopqrstuvwxyzABCDEF", 32768)
wrk.headers["Content-Type"] = "application/octet-stream"
