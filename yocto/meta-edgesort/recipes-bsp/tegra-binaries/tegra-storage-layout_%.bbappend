# Sizes NVIDIA's UDA partition (400 MiB in the stock layouts) to
# EDGESORT_DATA_PART_SIZE for the data partition mounted at
# /var/lib/edgesort. It stays without an image file, so flashing leaves it to
# be formatted on first boot (edgesort-image.bb). Only in the edgesort
# distro: other builds that include the layer keep NVIDIA's layout.
do_compile:append:edgesort() {
    printf '<partition_layout><device><partition name="UDA"><size> %s </size></partition></device></partition_layout>\n' \
        "${EDGESORT_DATA_PART_SIZE}" > ${B}/edgesort-uda-size.xml
    resized=no
    for layout in internal-flash.xml external-flash.xml; do
        [ -e ${B}/$layout ] || continue
        grep -q '<partition name="UDA"' ${B}/$layout || continue
        nvflashxmlparse --update-parttype-sizes-from=${B}/edgesort-uda-size.xml:data \
            --output=${B}/$layout.edgesort ${B}/$layout
        mv ${B}/$layout.edgesort ${B}/$layout
        # nvflashxmlparse skips a UDA whose type is not "data" without a word.
        grep -q "<size> ${EDGESORT_DATA_PART_SIZE} </size>" ${B}/$layout || \
            bbfatal "UDA in $layout was not resized to ${EDGESORT_DATA_PART_SIZE} bytes"
        resized=yes
    done
    # A layout without UDA would leave /var/lib/edgesort on the rootfs slot,
    # where an A/B update would take it away.
    [ "$resized" = yes ] || bbfatal "no UDA partition in ${PARTITION_LAYOUT_TEMPLATE} or ${PARTITION_LAYOUT_EXTERNAL}"
}
