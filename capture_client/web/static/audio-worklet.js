// Turns the microphone's samples (at the AudioContext's rate) into mono PCM16 chunks of 100 ms at the rate
// the service expects (processorOptions.targetRate, from the gateway).
const CHUNK_SECONDS = 0.1;

class Pcm16Resampler extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const targetRate = options.processorOptions.targetRate;
    this.step = sampleRate / targetRate;   // input samples per output sample
    this.chunkSamples = Math.round(targetRate * CHUNK_SECONDS);
    this.position = 0;                     // where the next output sample lies in `this.pending`
    this.pending = new Float32Array(0);
    this.chunk = new Int16Array(this.chunkSamples);
    this.filled = 0;
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    const samples = new Float32Array(this.pending.length + channel.length);
    samples.set(this.pending);
    samples.set(channel, this.pending.length);
    // Linear interpolation; an average over each step first when downsampling, against aliasing.
    while (this.position + this.step < samples.length - 1) {
      const start = Math.floor(this.position);
      const end = Math.max(start + 1, Math.floor(this.position + this.step));
      let sum = 0;
      for (let i = start; i < end; i++) sum += samples[i];
      const value = Math.max(-1, Math.min(1, sum / (end - start)));
      this.chunk[this.filled++] = value < 0 ? value * 0x8000 : value * 0x7fff;
      if (this.filled === this.chunkSamples) {
        this.port.postMessage(this.chunk.buffer, [this.chunk.buffer]);
        this.chunk = new Int16Array(this.chunkSamples);
        this.filled = 0;
      }
      this.position += this.step;
    }
    const keep = Math.floor(this.position);
    this.pending = samples.slice(keep);
    this.position -= keep;
    return true;
  }
}

registerProcessor("pcm16-resampler", Pcm16Resampler);
