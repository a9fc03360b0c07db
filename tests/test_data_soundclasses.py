"""The SynthScenes sound catalog: distinct, measurable, nameable classes."""
import numpy as np
import pytest

from common.soundclasses import CATALOG, SOUND_CLASSES, class_names_in_text, render_event

SR = 16000


def _band_profile(x: np.ndarray) -> np.ndarray:
    """Log energy in 24 log-spaced bands of the first 4096 samples, mean-removed (a crude timbre)."""
    n = 4096
    power = np.abs(np.fft.rfft(np.pad(x[:n], (0, max(0, n - x.size))))) ** 2
    freqs = np.fft.rfftfreq(n, 1 / SR)
    edges = np.geomspace(60, 7900, 25)
    bands = np.log(np.array([power[(freqs >= a) & (freqs < b)].sum() for a, b in zip(edges[:-1], edges[1:])]) + 1e-8)
    return bands - bands.mean()


def test_catalog_has_eight_or_more_classes_of_every_family():
    assert len(SOUND_CLASSES) >= 8 and set(SOUND_CLASSES) == set(CATALOG)
    assert {c.family for c in CATALOG.values()} == {"tonal", "noisy", "percussive", "sweep"}
    for name, c in CATALOG.items():
        assert class_names_in_text(c.description) in ([], [name]), f"{name}'s description names another class"


@pytest.mark.parametrize("name", SOUND_CLASSES)
def test_render_event_is_float32_with_peak_in_range_and_onset_at_zero(name):
    x = render_event(name, SR, np.random.default_rng(1))
    assert x.dtype == np.float32 and x.ndim == 1
    assert 0.5 <= np.abs(x).max() <= 0.9
    first_5ms = np.abs(x[: SR // 200]).max()
    assert first_5ms > 0.1 * np.abs(x).max(), "the attack must be at sample 0"
    assert render_event(name, SR, np.random.default_rng(1), duration_s=0.25).size == SR // 4


def test_classes_are_separable_by_nearest_spectral_prototype():
    rng = np.random.default_rng(0)
    protos = {c: _band_profile(render_event(c, SR, rng)) for c in SOUND_CLASSES}
    for c in SOUND_CLASSES:
        for _ in range(5):
            d = _band_profile(render_event(c, SR, rng))
            assert min(protos, key=lambda k: np.sum((protos[k] - d) ** 2)) == c


def test_class_names_in_text_in_order_of_first_mention():
    text = "Two drums are struck, then a Bell rings; the drum again. A buzzing sound is not a class name."
    assert class_names_in_text(text) == ["drum", "bell"]


def test_unknown_class_is_named():
    with pytest.raises(ValueError, match="trumpet"):
        render_event("trumpet", SR, np.random.default_rng(0))
