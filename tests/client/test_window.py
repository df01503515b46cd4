"""The desktop window shows the rendered view as it is (SDL's dummy driver: no screen needed)."""

from __future__ import annotations

import numpy as np

from capture_client.window import Window


def test_the_window_shows_the_bgr_image_in_its_true_colours(monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    image = np.zeros((60, 80, 3), dtype=np.uint8)
    image[:, :40] = (255, 0, 0)  # blue in OpenCV's order
    image[:, 40:] = (0, 0, 255)  # red
    window = Window("test", (80, 60))
    try:
        window.show(image)
        import pygame

        shown = pygame.surfarray.array3d(pygame.display.get_surface()).swapaxes(0, 1)  # RGB, rows first
        assert tuple(shown[30, 10]) == (0, 0, 255) and tuple(shown[30, 70]) == (255, 0, 0)
        assert not window.closed
        pygame.event.post(pygame.event.Event(pygame.QUIT))
        window.show(image)
        assert window.closed
    finally:
        window.close()
