#!/usr/bin/env python3
"""A stand-in for FaceFusion 3.x's `facefusion.py`, for tests of `swapline engine`.

It parses `headless-run` like FaceFusion's own argparse program (same command and flag names,
the same choices; argparse exits 2 on an unknown flag or value), prints tqdm-style progress on
stderr and writes an output: the target image resized to --output-image-resolution (Pillow),
or a copy of a video target.

The test steers it through files named by environment variables the engine passes on:
- FAKE_FACEFUSION_LOG: each run appends its arguments there as one JSON line;
- FAKE_FACEFUSION_MODE: a file holding `ok`, `crash` (exit 1 after a traceback), `hang`
  (sleeps, with a child process in its group, writing that child's pid to
  FAKE_FACEFUSION_LOG + '.child'), `slow` (4 s of progress) or `precheck` (a failed pre-check,
  exit 2, as when FaceFusion cannot download a model), read at each run.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

FACE_SWAPPER_SET = {
    'blendswap_256': ['256x256', '384x384', '512x512', '768x768', '1024x1024'],
    'ghost_1_256': ['256x256', '512x512', '768x768', '1024x1024'],
    'ghost_2_256': ['256x256', '512x512', '768x768', '1024x1024'],
    'ghost_3_256': ['256x256', '512x512', '768x768', '1024x1024'],
    'hififace_unofficial_256': ['256x256', '512x512', '768x768', '1024x1024'],
    'hyperswap_1a_256': ['256x256', '512x512', '768x768', '1024x1024'],
    'hyperswap_1b_256': ['256x256', '512x512', '768x768', '1024x1024'],
    'hyperswap_1c_256': ['256x256', '512x512', '768x768', '1024x1024'],
    'inswapper_128': ['128x128', '256x256', '384x384', '512x512', '768x768', '1024x1024'],
    'inswapper_128_fp16': ['128x128', '256x256', '384x384', '512x512', '768x768', '1024x1024'],
    'simswap_256': ['256x256', '512x512', '768x768', '1024x1024'],
    'simswap_unofficial_512': ['512x512', '768x768', '1024x1024'],
    'uniface_256': ['256x256', '512x512', '768x768', '1024x1024'],
}
FACE_ENHANCER_MODELS = ['codeformer', 'gfpgan_1.2', 'gfpgan_1.3', 'gfpgan_1.4', 'gpen_bfr_256', 'gpen_bfr_512',
                        'gpen_bfr_1024', 'gpen_bfr_2048', 'restoreformer_plus_plus']
PROCESSORS = ['age_modifier', 'deep_swapper', 'expression_restorer', 'face_debugger', 'face_editor', 'face_enhancer',
              'face_swapper', 'frame_colorizer', 'frame_enhancer', 'lip_syncer']
PIXEL_BOOSTS = sorted({boost for boosts in FACE_SWAPPER_SET.values() for boost in boosts})


def create_program() -> argparse.ArgumentParser:
    program = argparse.ArgumentParser(prog='facefusion.py')
    program.add_argument('-v', '--version', action='version', version='FaceFusion 3.1.1-fake')
    commands = program.add_subparsers(dest='command', required=True)
    run = commands.add_parser('headless-run')
    run.add_argument('-s', '--source-paths', nargs='+', required=True)
    run.add_argument('-t', '--target-path', required=True)
    run.add_argument('-o', '--output-path', required=True)
    run.add_argument('--processors', nargs='+', choices=PROCESSORS, default=['face_swapper'])
    run.add_argument('--face-swapper-model', choices=list(FACE_SWAPPER_SET), default='inswapper_128_fp16')
    run.add_argument('--face-swapper-pixel-boost', choices=PIXEL_BOOSTS)
    run.add_argument('--face-enhancer-model', choices=FACE_ENHANCER_MODELS, default='gfpgan_1.4')
    run.add_argument('--face-enhancer-blend', type=int, choices=range(0, 101), metavar='[0..100]', default=80)
    run.add_argument('--face-selector-mode', choices=['many', 'one', 'reference'], default='reference')
    run.add_argument('--face-detector-model', choices=['many', 'retinaface', 'scrfd', 'yolo_face'], default='yolo_face')
    run.add_argument('--output-image-quality', type=int, choices=range(0, 101), metavar='[0..100]', default=80)
    run.add_argument('--output-image-resolution')
    run.add_argument('--output-video-encoder', choices=['libx264', 'libx265', 'libvpx-vp9', 'h264_nvenc', 'hevc_nvenc'])
    run.add_argument('--output-video-quality', type=int, choices=range(0, 101), metavar='[0..100]', default=80)
    run.add_argument('--output-video-resolution')
    run.add_argument('--execution-providers', nargs='+', default=['cpu'])
    run.add_argument('--log-level', choices=['error', 'warn', 'info', 'debug'], default='info')
    return program


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
        log.write(json.dumps(sys.argv[1:]) + '\n')
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
