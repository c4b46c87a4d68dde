-- Argo CD health check for HarmonyGateway, HarmonyEndpoint and HarmonyPipeline
-- (harmony.runbeam.io/v1alpha1). Argo CD runs it with the resource as the global `obj` and reads
-- the returned table's `status` and `message`. Written for Lua 5.1 (Argo CD's gopher-lua) and
-- tested with Lua 5.4 (test/argocd-health.test.ts).
--
-- The status is only trusted once the operator has seen the current spec
-- (status.observedGeneration == metadata.generation); before that the resource is Progressing.
-- Then the Ready condition decides: True is Healthy, False is Degraded with its reason and
-- message, except two kinds of reason that resolve themselves and so are Progressing:
-- WaitingForDataPlane, which every rollout goes through (pods starting or not yet serving the new
-- config; a data plane that never comes up shows as Degraded on its Deployment), and a Harmony
-- resource waiting for another one (an endpoint no pipeline uses yet, or whose pipelines no
-- gateway has programmed yet; a pipeline whose gateway or endpoint the operator has not seen yet):
-- right after a sync creates them together, these hold for the moment the operator takes to see
-- and program all of them, and a Degraded verdict then would fail a sync that has a later wave.
-- One that never resolves keeps the resource Progressing, with the reason in the message (an
-- invalid pipeline, say, is Degraded itself, and its endpoint waits on it). Ready's message says
-- what is served; the cause is usually on an earlier condition (Accepted, ResolvedRefs,
-- Programmed), so the first of those that is False is added to the message.
local hs = {}

local function condition(conditions, type)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == type then
      return c
    end
  end
  return nil
end

local function describe(c)
  local reason = c.reason or "Unknown"
  if c.message ~= nil and c.message ~= "" then
    return reason .. ": " .. c.message
  end
  return reason
end

local generation = obj.metadata and obj.metadata.generation
local status = obj.status

if status == nil or status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Harmony operator to reconcile"
  return hs
end

if generation ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the Harmony operator to reconcile generation " .. tostring(generation)
    .. " (status is for generation " .. tostring(status.observedGeneration) .. ")"
  return hs
end

local ready = condition(status.conditions, "Ready")
if ready == nil or ready.status == "Unknown" then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ready condition"
  return hs
end

if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or ""
  return hs
end

-- Reasons that clear on their own once the operator has seen the rest of a sync (see above).
local waiting = {
  WaitingForDataPlane = true,
  Unused = true,
  NotProgrammed = true,
  EndpointNotFound = true,
  GatewayNotFound = true,
}

if waiting[ready.reason] then
  hs.status = "Progressing"
else
  hs.status = "Degraded"
end
hs.message = describe(ready)
for _, type in ipairs({ "Accepted", "ResolvedRefs", "Programmed" }) do
  local c = condition(status.conditions, type)
  if c ~= nil and c.status == "False" then
    if c.message ~= nil and c.message ~= "" and c.message ~= ready.message then
      hs.message = hs.message .. " (" .. type .. ": " .. c.message .. ")"
    end
    break
  end
end
return hs
