// matrix-js-sdk's SlidingSync (MSC4186) driving a full MatrixClient against a
// live homeserver; run by tests/clients/test_jssdk_sliding_sync.py.
//
//   node sliding_sync.mjs BASE_URL USER PASSWORD ROOM_ID,ROOM_ID,... MESSAGE_BODY
//
// Logs in, syncs one list of the 20 most recent rooms until it holds exactly
// the given rooms, prints {"event": "ready"}, then waits for a live message
// with MESSAGE_BODY to reach a room's timeline and prints {"event": "result"}.
// Every wait is bounded by one deadline; on any failure it prints
// {"event": "error"} and exits 1. stdout carries only these JSON lines (the
// SDK's own logging goes to stderr).

import { createClient, ClientEvent, RoomEvent, SyncState } from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";
import { SlidingSync, SlidingSyncEvent, SlidingSyncState } from "matrix-js-sdk/lib/sliding-sync.js";

const DEADLINE_MS = 20000;
const POLL_TIMEOUT_MS = 5000;

const [baseUrl, user, password, roomArg, messageBody] = process.argv.slice(2);
if (!messageBody) {
  console.error("usage: node sliding_sync.mjs BASE_URL USER PASSWORD ROOM_ID,... MESSAGE_BODY");
  process.exit(2);
}
const expectedRooms = roomArg.split(",");

function emit(event, fields) {
  process.stdout.write(JSON.stringify({ event, ...fields }) + "\n");
}

// The SDK logs through console.log (stdout) at debug/info: keep stdout for
// the JSON lines above.
logger.setLevel("warn");
for (const method of ["log", "info", "debug"]) {
  console[method] = (...args) => console.error(...args);
}

const deadline = setTimeout(() => fail(new Error(`not done within ${DEADLINE_MS} ms`)), DEADLINE_MS);

let client;
function fail(err) {
  emit("error", { message: String(err && err.stack ? err.stack : err) });
  client?.stopClient();
  process.exit(1);
}
process.on("unhandledRejection", fail);

let login;
try {
  login = await createClient({ baseUrl }).loginWithPassword(user, password);
} catch (err) {
  fail(err);
}
client = createClient({
  baseUrl,
  userId: login.user_id,
  accessToken: login.access_token,
  deviceId: login.device_id,
});

const list = {
  ranges: [[0, 19]],
  timeline_limit: 5,
  required_state: [
    ["m.room.create", ""],
    ["m.room.name", ""],
    ["m.room.member", "$LAZY"],
  ],
};
const slidingSync = new SlidingSync(
  baseUrl,
  new Map([["all", list]]),
  { timeline_limit: 5 },
  client,
  POLL_TIMEOUT_MS,
);

// What the raw SlidingSync layer saw, before the SDK turns it into Rooms.
const roomDataSeen = new Set();
let responses = 0;
slidingSync.on(SlidingSyncEvent.RoomData, (roomId) => {
  roomDataSeen.add(roomId);
});

let ready = false;
let lastError = null;
slidingSync.on(SlidingSyncEvent.Lifecycle, (state, resp, err) => {
  if (err) {
    lastError = String(err);
    return;
  }
  if (state !== SlidingSyncState.Complete) return;
  responses += 1;
  if (ready) return;
  const count = slidingSync.getListData("all")?.joinedCount;
  const listed = expectedRooms.filter((id) => client.getRoom(id) !== null);
  if (count === expectedRooms.length && listed.length === expectedRooms.length) {
    ready = true;
    emit("ready", {
      list_count: count,
      rooms: Object.fromEntries(expectedRooms.map((id) => [id, roomSummary(id)])),
      room_data_seen: [...roomDataSeen].sort(),
      responses,
    });
  }
});

function roomSummary(roomId) {
  const room = client.getRoom(roomId);
  return {
    name: room.name,
    membership: room.getMyMembership(),
    timeline: room
      .getLiveTimeline()
      .getEvents()
      .map((e) => e.getType()),
  };
}

client.on(RoomEvent.Timeline, (event, room, toStartOfTimeline, removed, data) => {
  if (!ready || toStartOfTimeline || removed || !data?.liveEvent) return;
  if (event.getType() !== "m.room.message" || event.getContent().body !== messageBody) return;
  clearTimeout(deadline);
  emit("result", {
    room_id: room.roomId,
    event_id: event.getId(),
    sender: event.getSender(),
    body: event.getContent().body,
    room_data_seen: [...roomDataSeen].sort(),
    responses,
    last_error: lastError,
  });
  client.stopClient();
  process.exit(0);
});

client.on(ClientEvent.Sync, (state, _prev, data) => {
  if (state === SyncState.Error) lastError = String(data?.error);
});

try {
  await client.startClient({ slidingSync });
} catch (err) {
  fail(err);
}
