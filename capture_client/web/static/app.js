// The live page: captures camera and microphone, streams them to the gateway, draws what comes back.
"use strict";

let LABELS = [];                 // the API's labels, in order: from the gateway (/api/constants)
let AUDIO_RATE_HZ = 0;           // the rate the service expects PCM at: from the gateway too
const EMOJI = { angry: "😠", disgust: "🤢", fear: "😨", happy: "😄", neutral: "😐", sad: "😢", surprise: "😲" };
const FRAME_FPS = 10;            // frames sent per second: enough for a 5 Hz answer, light on a phone's uplink
const FRAME_MAX_WIDTH = 640;     // frames are scaled down to this width before JPEG encoding
const JPEG_QUALITY = 0.7;
const MAX_BUFFERED_BYTES = 256 * 1024;  // a frame waits (is skipped) while this much is still unsent
const FINAL_CLOSE_CODES = new Set([1003, 1008, 1009, 1011]);  // the gateway refused us: retrying cannot help
const AUDIO = 1, FRAME = 2;

const $ = (id) => document.getElementById(id);
const state = {
  running: false, mode: "both", media: null, ws: null, audioContext: null, frameTimer: null,
  sequence: 0, sentTimes: [], resultTimes: [], dropped: 0, frameSize: null, reconnectDelay: 500,
  reconnectTimer: null, lastResult: null,
};

function colour(label) {
  return getComputedStyle(document.documentElement).getPropertyValue(`--${label}`).trim() || "#9aa5b1";
}

function buildBars() {
  for (const group of ["fused", "video", "audio"]) {
    const box = $(`bars-${group}`);
    box.replaceChildren();
    for (const label of LABELS) {
      const name = document.createElement("span");
      name.textContent = label;
      const bar = document.createElement("div");
      bar.className = "bar";
      const fill = document.createElement("span");
      fill.style.background = colour(label);
      fill.dataset.label = label;
      bar.append(fill);
      const value = document.createElement("span");
      value.className = "detail";
      value.dataset.value = label;
      value.textContent = "–";
      box.append(name, bar, value);
    }
  }
}

function setConnection(kind, text) {
  const pill = $("connection");
  pill.className = `pill ${kind}`;
  pill.textContent = text;
  pill.title = text;
}

function showError(text) {
  const box = $("error");
  box.textContent = text;
  box.hidden = !text;
}

function mediaErrorText(error) {
  if (!window.isSecureContext) {
    return "The browser allows the camera and microphone only on https:// or localhost. Open this page " +
           "through localhost, or serve it over HTTPS (emotion-web --tls-cert ... --tls-key ...).";
  }
  switch (error && error.name) {
    case "NotAllowedError": case "SecurityError":
      return "Camera or microphone access was refused. Allow it for this site in the browser's settings, then press Start again.";
    case "NotFoundError": case "OverconstrainedError":
      return "No camera or microphone was found. Connect one, or choose a mode that does not need it.";
    case "NotReadableError":
      return "The camera or microphone is in use by another program. Close it, then press Start again.";
    default:
      return `Could not open the camera or microphone: ${error && error.message ? error.message : error}`;
  }
}

async function start() {
  showError("");
  state.mode = $("mode").value;
  const wantsVideo = state.mode !== "audio", wantsAudio = state.mode !== "video";
  try {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) throw new DOMException("", "SecurityError");
    state.media = await navigator.mediaDevices.getUserMedia({
      video: wantsVideo ? { width: { ideal: 640 }, height: { ideal: 480 }, facingMode: "user" } : false,
      audio: wantsAudio ? { channelCount: 1, echoCancellation: true, noiseSuppression: false } : false,
    });
  } catch (error) {
    showError(mediaErrorText(error));
    setConnection("failed", "no camera or microphone");
    return;
  }
  state.running = true;
  $("start").textContent = "Stop";
  $("mode").disabled = true;
  $("placeholder").hidden = wantsVideo;
  const video = $("camera");
  video.srcObject = wantsVideo ? state.media : null;
  if (wantsAudio) await startAudio();
  if (wantsVideo) state.frameTimer = setInterval(sendFrame, 1000 / FRAME_FPS);
  connect();
}

function stop() {
  state.running = false;
  clearInterval(state.frameTimer);
  clearTimeout(state.reconnectTimer);
  if (state.ws) state.ws.close(1000, "stopped by the user");
  if (state.audioContext) state.audioContext.close();
  if (state.media) state.media.getTracks().forEach((track) => track.stop());
  Object.assign(state, { ws: null, audioContext: null, media: null });
  $("camera").srcObject = null;
  $("start").textContent = "Start";
  $("mode").disabled = false;
  $("placeholder").hidden = false;
  setConnection("idle", "stopped");
}

async function startAudio() {
  state.audioContext = new AudioContext();
  await state.audioContext.audioWorklet.addModule("/static/audio-worklet.js");
  const source = state.audioContext.createMediaStreamSource(state.media);
  const resampler = new AudioWorkletNode(state.audioContext, "pcm16-resampler",
                                         { processorOptions: { targetRate: AUDIO_RATE_HZ } });
  resampler.port.onmessage = (event) => send(AUDIO, new Uint8Array(event.data));
  source.connect(resampler);  // not connected to the speakers: nothing is played back
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws`);
  ws.binaryType = "arraybuffer";
  state.ws = ws;
  setConnection("connecting", "connecting…");
  ws.onopen = () => ws.send(JSON.stringify({ type: "config", mode: state.mode }));
  ws.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "status") {
      setConnection(message.state, message.state === "connected" ? "connected" : message.detail);
      if (message.state === "connected") state.reconnectDelay = 500;
    } else if (message.type === "result") {
      onResult(message.result);
    }
  };
  ws.onclose = (event) => {
    if (state.ws !== ws || !state.running) return;
    if (FINAL_CLOSE_CODES.has(event.code)) {
      showError(`The gateway closed the stream: ${event.reason || "code " + event.code}`);
      setConnection("failed", "stream refused");
      return;
    }
    const delay = state.reconnectDelay;
    state.reconnectDelay = Math.min(5000, delay * 2);
    setConnection("reconnecting", `connection lost; reconnecting in ${(delay / 1000).toFixed(1)} s`);
    state.reconnectTimer = setTimeout(() => state.running && connect(), delay);
  };
}

function send(kind, payload, sequence) {
  const ws = state.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN) return false;
  const header = kind === FRAME ? 5 : 1;
  const message = new Uint8Array(header + payload.byteLength);
  message[0] = kind;
  if (kind === FRAME) new DataView(message.buffer).setUint32(1, sequence, true);
  message.set(payload, header);
  ws.send(message);
  return true;
}

const frameCanvas = document.createElement("canvas");
let encoding = false;

function sendFrame() {
  const video = $("camera");
  if (encoding || !video.videoWidth || !state.ws || state.ws.readyState !== WebSocket.OPEN) return;
  if (state.ws.bufferedAmount > MAX_BUFFERED_BYTES) { state.dropped++; return; }  // the link is behind
  const scale = Math.min(1, FRAME_MAX_WIDTH / video.videoWidth);
  frameCanvas.width = Math.round(video.videoWidth * scale);
  frameCanvas.height = Math.round(video.videoHeight * scale);
  frameCanvas.getContext("2d").drawImage(video, 0, 0, frameCanvas.width, frameCanvas.height);
  encoding = true;
  frameCanvas.toBlob(async (blob) => {
    encoding = false;
    if (!blob) return;
    const sequence = ++state.sequence;
    if (send(FRAME, new Uint8Array(await blob.arrayBuffer()), sequence)) {
      state.frameSize = [frameCanvas.width, frameCanvas.height];
      state.sentTimes.push(performance.now());
    }
  }, "image/jpeg", JPEG_QUALITY);
}

function scoresOf(list) {
  const scores = {};
  for (const entry of list || []) scores[entry.label] = entry.probability;
  return scores;
}

function drawBars(group, list) {
  const scores = scoresOf(list);
  for (const label of LABELS) {
    const value = scores[label];
    document.querySelector(`#bars-${group} [data-label="${label}"]`).style.width = `${(value || 0) * 100}%`;
    document.querySelector(`#bars-${group} [data-value="${label}"]`).textContent =
      value === undefined ? "–" : value.toFixed(2);
  }
}

function drawFaces(result) {
  const overlay = $("overlay"), video = $("camera");
  const context = overlay.getContext("2d");
  const [width, height] = state.frameSize || [video.videoWidth, video.videoHeight];
  overlay.width = width || 640;
  overlay.height = height || 480;
  context.clearRect(0, 0, overlay.width, overlay.height);
  (result.faces || []).forEach((face, index) => {
    const box = face.box || {};
    const scale = overlay.width / 640;  // the same look whatever the frame's size
    context.lineWidth = (index === result.primary_face ? 4 : 2) * scale;
    context.strokeStyle = colour(face.top_emotion);
    context.strokeRect(box.x || 0, box.y || 0, box.width || 0, box.height || 0);
    context.fillStyle = context.strokeStyle;
    context.font = `${Math.round(22 * scale)}px system-ui, sans-serif`;
    context.fillText(face.top_emotion, (box.x || 0) + 4, Math.max(22 * scale, (box.y || 0) - 6 * scale));
  });
}

function onResult(response) {
  const result = response.result || {};
  state.lastResult = result;
  state.resultTimes.push(performance.now());
  const top = result.top_emotion;
  $("emoji").textContent = top ? EMOJI[top] : "·";
  $("top-emotion").textContent = top || "no answer";
  $("top-detail").textContent = top
    ? `p = ${result.top_probability.toFixed(2)} · face ${(result.video_weight * 100).toFixed(0)}% / voice ${(result.audio_weight * 100).toFixed(0)}%`
    : `face: ${statusText(result.video)} · voice: ${statusText(result.audio)}`;
  const uncertain = uncertainty(result);
  $("uncertain").hidden = !uncertain;
  $("uncertain").textContent = uncertain ? `uncertain: ${uncertain}` : "";
  $("speech").classList.toggle("on", (result.audio || {}).status === "USED");
  $("face").classList.toggle("on", (result.faces || []).length > 0);
  drawBars("fused", result.fused);
  drawBars("video", (result.video || {}).scores);
  drawBars("audio", (result.audio || {}).scores);
  drawFaces(result);
  if (response.frames_dropped !== undefined) state.serviceDropped = Number(response.frames_dropped);
}

function statusText(modality) {
  const status = (modality || {}).status || "ABSENT";
  return status.toLowerCase().replace(/_/g, " ");
}

// Where the service says an answer is uncertain, the reason; nothing otherwise (and from older services).
function uncertainty(result) {
  if (!result.uncertain) return "";
  const reason = result.uncertainty_reason || "";
  return reason === "MODALITIES_DISAGREE" ? "face and voice disagree" : "low confidence";
}

function perSecond(times, now) {
  while (times.length && now - times[0] > 2000) times.shift();
  return times.length / 2;
}

setInterval(() => {
  const now = performance.now();
  // Held back here while the link was behind; skipped by the service, which analyses only the newest frame.
  $("stats").textContent = `frames sent ${perSecond(state.sentTimes, now).toFixed(1)}/s · ` +
    `results ${perSecond(state.resultTimes, now).toFixed(1)}/s · held back ${state.dropped} · ` +
    `skipped by the service ${state.serviceDropped || 0}`;
}, 500);

async function init() {
  try {
    const constants = await (await fetch("/api/constants")).json();
    LABELS = constants.labels;
    AUDIO_RATE_HZ = constants.audio_sample_rate_hz;
  } catch (error) {
    showError(`The gateway did not answer (${error.message}); reload the page.`);
    return;
  }
  buildBars();
  $("start").addEventListener("click", () => (state.running ? stop() : start()));
}

init();
