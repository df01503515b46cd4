// Calls EmotionFusion.Fuse using nothing of this project but its .proto file.
// Usage: node fuse.js HOST:PORT IMAGE_FILE PCM_S16LE_16KHZ_FILE  -> prints the response as JSON.
const fs = require("fs");
const path = require("path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const [target, imageFile, audioFile] = process.argv.slice(2);
const root = path.resolve(__dirname, "../../..");
const definition = protoLoader.loadSync("protos/emotion/v1/emotion.proto", {
  includeDirs: [root],
  keepCase: true,
  enums: String,
  defaults: true,
});
const api = grpc.loadPackageDefinition(definition).emotion.v1;
const client = new api.EmotionFusion(target, grpc.credentials.createInsecure());
const request = {
  image: { encoded: fs.readFileSync(imageFile) },
  audio: { encoding: "PCM_S16LE", sample_rate_hz: 16000, data: fs.readFileSync(audioFile) },
};
client.Fuse(request, { deadline: Date.now() + 20000 }, (error, response) => {
  if (error) {
    console.error(`Fuse failed: ${error.code} ${error.details}`);
    process.exit(1);
  }
  console.log(JSON.stringify(response));
  client.close();
});
