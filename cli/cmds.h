/* cli/cmds.h - the hand-written commands defined outside commands.c, for its
 * table. Each: 0 success, 1 failure with *errp set (xe's contract,
 * cli/cli.h struct cli_cmd). Required parameters named in the table are
 * checked by cli_dispatch before a command runs. */
#ifndef VESSEL_CLI_CMDS_H
#define VESSEL_CLI_CMDS_H

#include "cli/cli.h"

#define CLI_CMD(name) int name(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)

/* vm_power.c */
CLI_CMD(cli_cmd_vm_start);
CLI_CMD(cli_cmd_vm_shutdown);
CLI_CMD(cli_cmd_vm_reboot);
CLI_CMD(cli_cmd_vm_suspend);
CLI_CMD(cli_cmd_vm_resume);
CLI_CMD(cli_cmd_vm_pause);
CLI_CMD(cli_cmd_vm_unpause);
CLI_CMD(cli_cmd_vm_reset_powerstate);
CLI_CMD(cli_cmd_vm_migrate);

/* vm_verbs.c */
CLI_CMD(cli_cmd_vm_snapshot);
CLI_CMD(cli_cmd_vm_checkpoint);
CLI_CMD(cli_cmd_snapshot_revert);
CLI_CMD(cli_cmd_vm_uninstall);
CLI_CMD(cli_cmd_vm_disk_add);
CLI_CMD(cli_cmd_vm_cd_insert);
CLI_CMD(cli_cmd_vm_cd_eject);
CLI_CMD(cli_cmd_vm_vif_list);

/* storage.c */
CLI_CMD(cli_cmd_vdi_create);
CLI_CMD(cli_cmd_vdi_destroy);
CLI_CMD(cli_cmd_vdi_forget);
CLI_CMD(cli_cmd_vdi_snapshot);
CLI_CMD(cli_cmd_vdi_clone);
CLI_CMD(cli_cmd_vdi_copy);
CLI_CMD(cli_cmd_vdi_resize);
CLI_CMD(cli_cmd_vdi_enable_cbt);
CLI_CMD(cli_cmd_vdi_disable_cbt);
CLI_CMD(cli_cmd_vdi_data_destroy);
CLI_CMD(cli_cmd_vdi_list_changed_blocks);
CLI_CMD(cli_cmd_vbd_create);
CLI_CMD(cli_cmd_vbd_plug);
CLI_CMD(cli_cmd_vbd_unplug);
CLI_CMD(cli_cmd_vbd_destroy);
CLI_CMD(cli_cmd_sr_create);
CLI_CMD(cli_cmd_sr_scan);
CLI_CMD(cli_cmd_sr_destroy);
CLI_CMD(cli_cmd_sr_forget);
CLI_CMD(cli_cmd_pbd_plug);
CLI_CMD(cli_cmd_pbd_unplug);

/* network.c */
CLI_CMD(cli_cmd_network_create);
CLI_CMD(cli_cmd_network_destroy);
CLI_CMD(cli_cmd_vif_create);
CLI_CMD(cli_cmd_vif_plug);
CLI_CMD(cli_cmd_vif_unplug);
CLI_CMD(cli_cmd_vif_destroy);
CLI_CMD(cli_cmd_pif_scan);
CLI_CMD(cli_cmd_pif_reconfigure_ip);
CLI_CMD(cli_cmd_vlan_create);

/* host.c */
CLI_CMD(cli_cmd_host_cpu_info);
CLI_CMD(cli_cmd_pool_join);
CLI_CMD(cli_cmd_pool_eject);
CLI_CMD(cli_cmd_pool_designate_new_master);
CLI_CMD(cli_cmd_pool_ha_enable);
CLI_CMD(cli_cmd_pool_ha_disable);
CLI_CMD(cli_cmd_pool_ha_prevent_restarts_for);
CLI_CMD(cli_cmd_pool_ha_compute_max_host_failures_to_tolerate);
CLI_CMD(cli_cmd_host_disable);
CLI_CMD(cli_cmd_host_enable);
CLI_CMD(cli_cmd_host_get_vms_which_prevent_evacuation);
CLI_CMD(cli_cmd_host_evacuate);

/* transfer.c */
CLI_CMD(cli_cmd_vm_export);
CLI_CMD(cli_cmd_snapshot_export_to_template);
CLI_CMD(cli_cmd_vm_import);
CLI_CMD(cli_cmd_vdi_export);
CLI_CMD(cli_cmd_vdi_import);

/* vm_disks.c */
CLI_CMD(cli_cmd_vm_disk_list);
CLI_CMD(cli_cmd_vm_cd_list);

/* console.c */
CLI_CMD(cli_cmd_console);

/* data_sources.c */
CLI_CMD(cli_cmd_host_data_source_list);
CLI_CMD(cli_cmd_vm_data_source_list);

#endif
