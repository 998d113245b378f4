-- wrk script: POST 360NRS event notifications, each with a unique `id`.
--
--   wrk -s bench/nrs360_events.lua 'http://127.0.0.1:PORT/hooks/nrs360/events?token=...' -- RUN
--
-- The id is "<RUN>-<thread>-<counter>": RUN (first script argument) keeps a
-- warm-up and a measured run on the same store apart; the thread number and a
-- per-thread counter keep every request of a run apart. done() prints one
-- "BENCH ..." line that bench/ingest.py parses.

local threads = {}
local next_thread = 1

function setup(thread)
   thread:set("thread_number", next_thread)
   next_thread = next_thread + 1
   table.insert(threads, thread)
end

local run = "run"
counter = 0 -- a global, so that done() can read it through thread:get()
local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }

function init(args)
   run = args[1] or run
end

function request()
   counter = counter + 1
   local body = "id=" .. run .. "-" .. thread_number .. "-" .. counter
      .. "&channel=sms&contactId=48213&campaignId=9911"
      .. "&campaignName=Campa%C3%B1a+de+oto%C3%B1o&event=delivered"
      .. "&eventDate=2026-11-20+10%3A15%3A00"
   return wrk.format("POST", nil, headers, body)
end

function done(summary, latency, requests)
   local generated = 0
   for _, thread in ipairs(threads) do
      generated = generated + thread:get("counter")
   end
   local errors = summary.errors
   io.write(string.format(
      "BENCH requests=%d generated=%d status_errors=%d connect=%d read=%d write=%d timeout=%d"
         .. " p50_us=%d p99_us=%d duration_us=%d\n",
      summary.requests, generated, errors.status, errors.connect, errors.read, errors.write,
      errors.timeout, latency:percentile(50), latency:percentile(99), summary.duration))
end
