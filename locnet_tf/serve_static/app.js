// The page of `python -m locnet_tf.serve`: plain JavaScript, no build step, nothing from the internet.
//
// Photos are sent as they are (the file's own bytes, so the answer is `predict`'s on that file).
// Video and webcam frames are drawn to a canvas, sent as JPEG, and steadied on the server: each stream
// is a session there, fed to the video path's Smoother (see locnet_tf/serve.py).
"use strict";

const $ = (id) => document.getElementById(id);
const canvas = $("canvas");
const context = canvas.getContext("2d");
const video = $("video");
const grab = document.createElement("canvas"); // the frame sent to the server, at the video's own size
const grabContext = grab.getContext("2d", { willReadFrequently: false });

const state = {
  card: null,
  mode: null, // "photo" | "video" | "webcam"
  photo: null, // { file, bitmap }
  prediction: null,
  running: false,
  stream: null, // the webcam's MediaStream
  frames: 0,
  times: [], // arrival times of the last answers, for frames/s
};

function setStatus(text, isError = false) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("error", isError);
}

function threshold() {
  return Number($("threshold").value);
}

function showCard(card) {
  const rows = [
    ["file", card.file],
    ["classes", card.classes.join(", ")],
    ["input size", `${card.input_size} × ${card.input_size}` + (card.input_dtype ? ` (${card.input_dtype})` : "")],
    ["threshold", card.presence_threshold],
    ["resize", card.resize],
    ["quantization", card.quantization || "—"],
    ["model", card.model_name || "—"],
    ["source model", card.source_sha256 ? `sha256 ${card.source_sha256.slice(0, 16)}…` : "—"],
    ["metadata", card.metadata_source || "—"],
    ["workers", card.workers],
  ];
  const list = $("card");
  list.replaceChildren();
  for (const [key, value] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = key;
    const dd = document.createElement("dd");
    dd.textContent = String(value);
    list.append(dt, dd);
  }
}

// Draws `source` (an ImageBitmap or the video) and the prediction's box, class and score.
function draw(source, width, height, prediction) {
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  context.drawImage(source, 0, 0, width, height);
  if (!prediction) return;
  const [imageHeight, imageWidth] = prediction.image_size;
  const sx = width / imageWidth;
  const sy = height / imageHeight;
  const line = Math.max(2, Math.round(Math.min(width, height) / 150));
  const present = prediction.present;
  const label = present
    ? `${prediction.class_name} ${prediction.score.toFixed(2)}`
    : `no object (p_c ${prediction.p_c.toFixed(2)})`;
  if (present) {
    const [x1, y1, x2, y2] = prediction.box_pixels;
    context.lineWidth = line;
    context.strokeStyle = "#ff2d55";
    context.strokeRect(x1 * sx, y1 * sy, (x2 - x1) * sx, (y2 - y1) * sy);
    canvas.dataset.box = JSON.stringify([x1 * sx, y1 * sy, x2 * sx, y2 * sy]);
  } else {
    delete canvas.dataset.box;
  }
  const size = Math.max(12, Math.round(Math.min(width, height) / 25));
  context.font = `${size}px system-ui, sans-serif`;
  const textWidth = context.measureText(label).width;
  let x = 0;
  let y = 0;
  if (present) {
    x = Math.max(0, prediction.box_pixels[0] * sx);
    y = Math.max(0, prediction.box_pixels[1] * sy - size - 6);
  }
  context.fillStyle = present ? "#ff2d55" : "rgba(0, 0, 0, 0.6)";
  context.fillRect(x, y, textWidth + 8, size + 6);
  context.fillStyle = "#fff";
  context.fillText(label, x + 4, y + size);
  canvas.dataset.drawn = String(Number(canvas.dataset.drawn || 0) + 1);
}

function showResult(row) {
  $("result").textContent = JSON.stringify(row, null, 2);
}

async function postImage(body, params) {
  const query = new URLSearchParams({ threshold: String(threshold()), ...params });
  const response = await fetch(`/predict?${query}`, { method: "POST", body });
  let answer;
  try {
    answer = await response.json();
  } catch (error) {
    answer = { error: `the server answered ${response.status} without JSON` };
  }
  if (!response.ok) throw new Error(answer.error || `HTTP ${response.status}`);
  return answer;
}

// ---------------------------------------------------------------- photos

async function predictPhoto(file) {
  stopStream();
  state.mode = "photo";
  document.body.dataset.state = "busy";
  setStatus(`Predicting ${file.name}…`);
  const form = new FormData();
  form.append("file", file, file.name);
  let row;
  try {
    row = await postImage(form, {});
  } catch (error) {
    setStatus(error.message, true);
    $("result").textContent = JSON.stringify({ error: error.message }, null, 2);
    document.body.dataset.state = "error";
    return;
  }
  let bitmap = state.photo && state.photo.file === file ? state.photo.bitmap : null;
  if (!bitmap) {
    try {
      bitmap = await createImageBitmap(file, { imageOrientation: "from-image" }); // EXIF applied, as the server does
    } catch (error) {
      bitmap = null; // a format the server reads and this browser does not (a 16-bit PNG, say): no picture
    }
  }
  state.photo = { file, bitmap };
  state.prediction = row;
  if (bitmap) draw(bitmap, bitmap.width, bitmap.height, row);
  showResult(row);
  setStatus(`${file.name}: ${row.present ? `${row.class_name}, score ${row.score.toFixed(3)}` : "no object"}`);
  document.body.dataset.state = "photo-done";
}

// ---------------------------------------------------------------- video and webcam

function newSession(kind) {
  const random = Math.random().toString(36).slice(2, 10);
  return `${kind}-${Date.now().toString(36)}-${random}`;
}

function frameRate() {
  const now = performance.now();
  while (state.times.length && now - state.times[0] > 2000) state.times.shift();
  if (state.times.length < 2) return 0;
  return ((state.times.length - 1) * 1000) / (state.times[state.times.length - 1] - state.times[0]);
}

// Draws the video as it plays, with the newest answer's box.
function render() {
  if (!state.running) return;
  if (video.readyState >= 2 && video.videoWidth) {
    draw(video, video.videoWidth, video.videoHeight, state.prediction);
  }
  requestAnimationFrame(render);
}

// Sends frames one after another (the next once the answer is back): as many frames/s as the server gives.
async function predictLoop(kind, session) {
  const started = performance.now();
  while (state.running) {
    if (video.readyState < 2 || !video.videoWidth) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      continue;
    }
    if (kind === "video" && video.ended) break;
    const timestamp = kind === "video" ? video.currentTime : (performance.now() - started) / 1000;
    grab.width = video.videoWidth;
    grab.height = video.videoHeight;
    grabContext.drawImage(video, 0, 0);
    const blob = await new Promise((resolve) => grab.toBlob(resolve, "image/jpeg", 0.92));
    const params = { name: `${kind} frame` };
    if ($("smooth").checked) Object.assign(params, { session, timestamp: timestamp.toFixed(4) });
    let row;
    try {
      row = await postImage(blob, params);
    } catch (error) {
      setStatus(error.message, true);
      break;
    }
    if (!state.running) break;
    state.prediction = row;
    state.frames += 1;
    state.times.push(performance.now());
    canvas.dataset.frames = String(state.frames);
    showResult(row);
    $("rate").textContent = `${frameRate().toFixed(1)} frames/s predicted · ${state.frames} frames`;
  }
  if (kind === "video" && state.running) {
    setStatus(`Video done: ${state.frames} frames predicted.`);
    document.body.dataset.state = "video-ended";
    state.running = false;
    $("stop-button").disabled = true;
  }
}

function stopStream() {
  state.running = false;
  if (state.stream) {
    for (const track of state.stream.getTracks()) track.stop();
    state.stream = null;
  }
  video.pause();
  if (video.src) {
    URL.revokeObjectURL(video.src);
    video.removeAttribute("src");
  }
  video.srcObject = null;
  $("stop-button").disabled = true;
}

function startStream(kind) {
  state.mode = kind;
  state.running = true;
  state.frames = 0;
  state.times = [];
  state.prediction = null;
  canvas.dataset.frames = "0";
  $("stop-button").disabled = false;
  document.body.dataset.state = "streaming";
  requestAnimationFrame(render);
  predictLoop(kind, newSession(kind));
}

async function playVideo(file) {
  stopStream();
  setStatus(`Playing ${file.name}…`);
  video.srcObject = null;
  video.src = URL.createObjectURL(file);
  video.loop = false;
  try {
    await video.play();
  } catch (error) {
    setStatus(`${file.name}: this browser cannot play it (${error.message})`, true);
    document.body.dataset.state = "error";
    return;
  }
  startStream("video");
}

async function startWebcam() {
  stopStream();
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    setStatus("No camera access here: browsers allow it on http://127.0.0.1 / localhost or https only.", true);
    return;
  }
  try {
    state.stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (error) {
    setStatus(`Webcam: ${error.message}`, true);
    document.body.dataset.state = "error";
    return;
  }
  video.srcObject = state.stream;
  await video.play();
  setStatus("Webcam on.");
  startStream("webcam");
}

// ---------------------------------------------------------------- wiring

function openFile(file) {
  if (!file) return;
  if (file.type.startsWith("video/")) playVideo(file);
  else predictPhoto(file);
}

$("photo-input").addEventListener("change", (event) => openFile(event.target.files[0]));
$("video-input").addEventListener("change", (event) => event.target.files[0] && playVideo(event.target.files[0]));
$("webcam-button").addEventListener("click", startWebcam);
$("stop-button").addEventListener("click", () => {
  stopStream();
  setStatus("Stopped.");
  document.body.dataset.state = "stopped";
});

const drop = $("drop");
drop.addEventListener("dragover", (event) => {
  event.preventDefault();
  drop.classList.add("over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  openFile(event.dataTransfer.files[0]);
});

let again = null;
$("threshold").addEventListener("input", () => {
  $("threshold-value").textContent = threshold().toFixed(2);
  // A photo is asked again (the answer's `present` follows the slider); streams use it from their next frame.
  if (state.mode === "photo" && state.photo) {
    clearTimeout(again);
    again = setTimeout(() => predictPhoto(state.photo.file), 150);
  }
});

async function loadCard() {
  try {
    const response = await fetch("/model");
    state.card = await response.json();
  } catch (error) {
    setStatus(`Cannot reach the server: ${error.message}`, true);
    return;
  }
  showCard(state.card);
  $("threshold").value = String(state.card.presence_threshold);
  $("threshold-value").textContent = Number(state.card.presence_threshold).toFixed(2);
  setStatus("Ready: drop or pick a photo or a video, or start the webcam.");
  document.body.dataset.state = "ready";
}

loadCard();
