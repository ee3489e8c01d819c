"""DrQ random shift of training images (chef_policy.networks.random_shift): integer translations by
at most `pad` px with edge pixels filling in, independent per image, dtype and shape kept."""

import pytest
import torch
import torch.nn.functional as F

from chef_policy.networks import random_shift, shift_images


def _all_shifts(image, pad):
    """Every shift of one [H, W, C] image by (dy, dx) in [-pad, pad]^2 with replicate padding."""
    h, w, _ = image.shape
    padded = F.pad(image.permute(2, 0, 1)[None].float(), (pad,) * 4, mode='replicate')[0].permute(1, 2, 0)
    return {(dy, dx): padded[pad + dy:pad + dy + h, pad + dx:pad + dx + w].to(image.dtype)
            for dy in range(-pad, pad + 1) for dx in range(-pad, pad + 1)}


def test_random_shift_translates_each_image_and_keeps_dtype_and_shape():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (16, 32, 32, 3), generator=g, dtype=torch.uint8)
    out = random_shift(images, 4, generator=g)
    assert out.dtype == torch.uint8 and out.shape == images.shape
    assert not torch.equal(out, images)                      # the batch changed
    shifts = set()
    for i in range(images.shape[0]):
        match = [s for s, img in _all_shifts(images[i], 4).items() if torch.equal(img, out[i])]
        assert match, f'image {i} is not a <= 4 px edge-padded shift of its input'
        shifts.add(match[0])
    assert len(shifts) > 4                                   # independent shifts per image
    assert torch.equal(images, images.clone())               # input untouched (no in-place write)


def test_random_shift_is_off_at_pad_zero_and_checks_its_input():
    images = torch.zeros(2, 8, 8, 3, dtype=torch.uint8)
    assert random_shift(images, 0) is images
    with pytest.raises(ValueError, match=r'\[B, H, W, C\]'):
        random_shift(images[0], 4)


def test_shift_images_shifts_only_the_image_keys():
    obs = {'basket_front_left/pixels': torch.randint(0, 256, (8, 16, 16, 3), dtype=torch.uint8),
           'sawyer/joints/angle': torch.randn(8, 3, 7)}
    torch.manual_seed(1)
    out = shift_images(obs, ('basket_front_left/pixels',), 2)
    assert out['sawyer/joints/angle'] is obs['sawyer/joints/angle']
    assert out['basket_front_left/pixels'].dtype == torch.uint8
    assert not torch.equal(out['basket_front_left/pixels'], obs['basket_front_left/pixels'])
    assert shift_images(obs, ('basket_front_left/pixels',), 0) == obs
