"""The named augmentation policies and the --augment help text, apart from the ops: no torch here,
so that `konbu augment preview --help` prints without importing it. The ops themselves and the
policy syntax are konbu.train.augment, which re-exports both names.
"""

POLICIES = {
    # Handwriting: a few degrees, pixels and percent of size, as a second writer would differ; no
    # flips (a mirrored 2 is not a 2) and no large turns (6 <-> 9). The usual Keras MNIST recipe.
    "digits": "rotate=10,shift=0.1,zoom=0.1",
    # The standard CIFAR recipe since ResNet (He et al. 2016): pad 4 + random crop and a horizontal
    # flip (airbench does the same with a 2-pixel translation). Cutout (DeVries & Taylor 2017) showed
    # its gain over 200-epoch schedules, far longer than konbu's runs: opt in with `cifar,cutout=8`.
    "cifar": "crop=4,hflip",
    # Deep Learning with Keras (Gulli & Pal) ch. 3, cifar10-deep-aug: the generator the book trains
    # with, ImageDataGenerator(width_shift_range=0.1, height_shift_range=0.1, horizontal_flip=True),
    # whose fill_mode defaults to "nearest" (our fill=border). The book's other generator (rotation
    # 40, shifts and zoom 0.2) only draws example pictures: trained on, it left konbu 12 points under
    # the unaugmented net after 20 epochs.
    "keras-cifar10": "shift=0.1,hflip,fill=border",
}

POLICY_HELP = ("augmentation policy: a name (" + ", ".join(POLICIES) + ") or ops such as "
               "'rotate=15,shift=0.1,zoom=0.1,shear=0.2,hflip,vflip,crop=4,cutout=8,mixup=0.2,cutmix=1.0' "
               "(altflip: airbench's alternating flips; fill=zeros|border|reflection, mixup_p=P, cutmix_p=P); "
               "'none' for no augmentation")
