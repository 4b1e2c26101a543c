#!/usr/bin/env python3
"""A stand-in for FaceFusion 3.x's `facefusion.py`, for tests of `swapline engine`.

It parses `headless-run` like FaceFusion's own argparse program (same command and flag names,
the same choices; argparse exits 2 on an unknown flag or value), prints tqdm-style progress on
stderr and writes an output: the target image resized to --output-image-resolution (Pillow),
or a copy of a video target.

The test steers it through files named by environment variables the engine passes on:
- FAKE_FACEFUSION_LOG: each run appends its arguments and CUDA_VISIBLE_DEVICES there as one
  JSON line;
- FAKE_FACEFUSION_MODE: a file holding `ok`, `crash` (exit 1 after a traceback), `hang`
  (sleeps, with a child process in its group, writing that child's pid to
  FAKE_FACEFUSION_LOG + '.child'), `slow` (4 s of progress) or `precheck` (a failed pre-check,
  exit 2, as when FaceFusion cannot download a model), read at each run.
"""

import json
import os
import shutil
import subprocess
import sys
import time

from facefusion.program import FACE_SWAPPER_SET, create_program


def progress(total: int, seconds: float) -> None:
    for done in range(total + 1):
        percent = done * 100 // total
        bar = ('#' * (percent // 10)).ljust(10)
        sys.stderr.write(f'\rprocessing: {percent:3d}%|{bar}| {done}/{total} [00:00<00:00, 9.99frame/s]')
        sys.stderr.flush()
        time.sleep(seconds / total)
    sys.stderr.write('\n')


def main() -> int:
    args = create_program().parse_args()
    with open(os.environ['FAKE_FACEFUSION_LOG'], 'a') as log:
        log.write(json.dumps({'argv': sys.argv[1:], 'cuda_visible_devices': os.environ.get('CUDA_VISIBLE_DEVICES')}) + '\n')
    mode_file = os.environ.get('FAKE_FACEFUSION_MODE')
    mode = open(mode_file).read().strip() if mode_file and os.path.exists(mode_file) else 'ok'
    # FaceFusion's pre-check: the pixel boost must be one the model offers (exit 2).
    if args.face_swapper_pixel_boost and args.face_swapper_pixel_boost not in FACE_SWAPPER_SET[args.face_swapper_model]:
        print('[FACEFUSION.CORE] pixel boost not supported by the model', file=sys.stderr)
        return 2
    if not os.path.isfile(args.target_path) or not all(os.path.isfile(path) for path in args.source_paths):
        print('[FACEFUSION.CORE] select an image or video for target path', file=sys.stderr)
        return 2
    if mode == 'precheck':
        print('[FACEFUSION.DOWNLOAD] model download failed: inswapper_128.onnx', file=sys.stderr)
        return 2
    if mode == 'hang':
        child = subprocess.Popen(['sleep', '600'])
        with open(os.environ['FAKE_FACEFUSION_LOG'] + '.child', 'w') as pid_file:
            pid_file.write(str(child.pid))
        progress(10, 0.5)
        time.sleep(600)
    progress(40 if mode == 'slow' else 10, 4.0 if mode == 'slow' else 0.3)
    if mode == 'crash':
        print('Traceback (most recent call last):\n  File "facefusion/core.py", line 1\n'
              'onnxruntime.capi.onnxruntime_pybind11_state.Fail: CUDA out of memory', file=sys.stderr)
        return 1
    if args.output_path.endswith(('.jpg', '.png', '.webp')):
        from PIL import Image
        image = Image.open(args.target_path).convert('RGB')
        if args.output_image_resolution:
            width, height = (int(side) for side in args.output_image_resolution.split('x'))
            image = image.resize((width, height))
        image.save(args.output_path)
    else:
        shutil.copyfile(args.target_path, args.output_path)
    print(f'[FACEFUSION.CORE] processing to {"image" if args.output_path.endswith(".jpg") else "video"} succeed in 0.3 seconds')
    return 0


if __name__ == '__main__':
    sys.exit(main())
