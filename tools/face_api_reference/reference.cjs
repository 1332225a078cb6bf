// Runs the original face-api (tfjs + WASM backend under Node) on raw RGB images and prints JSON.
// Usage: NODE_PATH=<folder with node_modules> node reference.cjs <jobs.json> <model dir>
// jobs.json: [{"name", "raw": path to H*W*3 uint8 bytes, "height", "width"}]. Driven by make_fixtures.py.
const fs = require('fs');
const tf = require('@tensorflow/tfjs');
const wasm = require('@tensorflow/tfjs-backend-wasm');
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');

async function main() {
  const [jobsPath, modelDir] = process.argv.slice(2);
  wasm.setWasmPaths(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm').replace(/[^/]*$/, ''));
  await tf.setBackend('wasm');
  await tf.ready();
  await faceapi.nets.tinyFaceDetector.loadFromDisk(modelDir);
  await faceapi.nets.faceLandmark68Net.loadFromDisk(modelDir);
  await faceapi.nets.faceLandmark68TinyNet.loadFromDisk(modelDir);
  await faceapi.nets.ssdMobilenetv1.loadFromDisk(modelDir);
  const out = { backend: tf.getBackend(), tfjs: tf.version.tfjs, faceapi: faceapi.version, images: [] };
  for (const job of JSON.parse(fs.readFileSync(jobsPath, 'utf8'))) {
    const bytes = new Uint8Array(fs.readFileSync(job.raw));
    const image = tf.tensor3d(bytes, [job.height, job.width, 3], 'int32');
    const inputSize = job.inputSize || 416;
    const raw = await faceapi.nets.tinyFaceDetector.forward(image, inputSize);  // [1, S, S, 25]
    const options = new faceapi.TinyFaceDetectorOptions({ inputSize, scoreThreshold: job.scoreThreshold || 0.5 });
    const detections = await faceapi.detectAllFaces(image, options);
    const faces = [];
    for (const det of detections) {
      const box = det.box;
      const crop = box.clipAtImageBorders(job.width, job.height);  // what extractFaceTensors slices
      const face = tf.slice3d(image, [crop.y, crop.x, 0], [crop.height, crop.width, 3]);
      const full = await faceapi.nets.faceLandmark68Net.detectLandmarks(face);
      const tiny = await faceapi.nets.faceLandmark68TinyNet.detectLandmarks(face);
      face.dispose();
      faces.push({
        score: det.score,
        box: [box.x, box.y, box.width, box.height],
        crop: [crop.x, crop.y, crop.width, crop.height],
        landmarks68: full.positions.map((p) => [p.x, p.y]),
        landmarks68_tiny: tiny.positions.map((p) => [p.x, p.y]),
      });
    }
    const ssdRaw = await faceapi.nets.ssdMobilenetv1.forward(image);
    const ssd = await faceapi.detectAllFaces(image, new faceapi.SsdMobilenetv1Options({ minConfidence: 0.5 }));
    out.images.push({ name: job.name, height: job.height, width: job.width, input_size: inputSize,
      detector_output_shape: raw.shape, detector_output: Array.from(raw.dataSync()), faces,
      ssd_scores: Array.from(ssdRaw.scores[0].dataSync()), ssd_boxes: Array.from(ssdRaw.boxes[0].dataSync()),
      ssd_faces: ssd.map((d) => ({ score: d.score, box: [d.box.x, d.box.y, d.box.width, d.box.height] })) });
    ssdRaw.scores.forEach((t) => t.dispose());
    ssdRaw.boxes.forEach((t) => t.dispose());
    raw.dispose();
    image.dispose();
  }
  process.stdout.write(JSON.stringify(out));
}

main().catch((err) => { console.error(err); process.exit(1); });
