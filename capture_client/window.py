"""Shows rendered views in a desktop window (pygame/SDL2: OpenCV here is the headless build, without GUI)."""

from __future__ import annotations

import os

import numpy as np

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")


def display_available() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class Window:
    def __init__(self, title: str, size: tuple[int, int]):
        try:
            import pygame
        except ImportError:
            raise RuntimeError("the window needs pygame: `pip install pygame`, or run with --no-window") from None
        self._pygame = pygame
        pygame.display.init()
        pygame.display.set_caption(title)
        self._surface = pygame.display.set_mode(size)
        self.closed = False

    def show(self, image_bgr: np.ndarray) -> None:
        """Draw one BGR image (of the window's size) and handle events; Esc, q or closing the window quits."""
        pygame = self._pygame
        height, width = image_bgr.shape[:2]
        rgb = np.ascontiguousarray(image_bgr[:, :, ::-1])
        self._surface.blit(pygame.image.frombuffer(rgb.tobytes(), (width, height), "RGB"), (0, 0))
        pygame.display.flip()
        for event in pygame.event.get():
            if event.type == pygame.QUIT or (event.type == pygame.KEYDOWN and event.key in (pygame.K_ESCAPE, pygame.K_q)):
                self.closed = True

    def close(self) -> None:
        self._pygame.display.quit()
